// The digit page: pick or drop a photo, send it to the predict API on this origin, show
// the answer and the round-trip time.  The conversion of photos to model input and the
// reading of answers live in mnist.js (loaded first); this file is the page around them.
// For Flask targets the photo itself is sent (multipart field "file"); for KServe
// targets the page sends the 28x28 model input it computed (V1 or V2 body).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const { UserError, toGrey, resizeLanczos, mnistPixels, wireInstance, requestBody, decodeAnswer } =
    window.servebenchMnist;

  const state = { config: null, file: null, prepared: null, busy: false, previewUrl: null };
  // Exposed for the browser tests and for curious users (devtools).
  window.digitPage = { state, mnistPixels, wireInstance, toGrey, resizeLanczos, last: null };

  function showMessage(text, kind = "error") {
    const el = $("message");
    el.textContent = text;
    el.className = `message ${kind}`;
    el.hidden = !text;
  }

  function setResult(stateName) {
    $("result").dataset.state = stateName;
  }

  function formatBytes(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
    return `${(n / 1024 / 1024).toFixed(1)} MB`;
  }

  function drawModelInput(pixels) {
    const canvas = $("model-input");
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(28, 28);
    for (let i = 0; i < 784; i += 1) {
      const v = pixels[i]; // as the model gets it: light ink on black, like MNIST
      img.data.set([v, v, v, 255], i * 4);
    }
    ctx.putImageData(img, 0, 0);
  }

  function clearAnswer() {
    $("digit").textContent = "?";
    $("rtt").textContent = "–";
    $("answered-by").textContent = "–";
    $("scores").hidden = true;
    $("scores").replaceChildren();
    $("scores-note").hidden = true;
    setResult("idle");
  }

  async function decodeFile(file) {
    const cfg = state.config;
    if (file.type && !file.type.startsWith("image/")) {
      throw new UserError(`“${file.name}” is not an image (its type is ${file.type}). Choose a PNG or JPEG photo of a digit.`);
    }
    if (file.size === 0) throw new UserError(`“${file.name}” is empty.`);
    if (cfg && file.size > cfg.max_upload_bytes) {
      throw new UserError(`“${file.name}” is ${formatBytes(file.size)}; the limit is ${formatBytes(cfg.max_upload_bytes)}. Use a smaller photo.`);
    }
    let bitmap;
    try {
      bitmap = await createImageBitmap(file, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
    } catch (err) {
      throw new UserError(`“${file.name}” could not be read as an image (${err.message || err.name}). Choose a PNG or JPEG photo of a digit.`);
    }
    const { width, height } = bitmap;
    const maxPixels = cfg ? cfg.preprocess.max_pixels : Infinity;
    if (width * height > maxPixels) {
      bitmap.close();
      throw new UserError(`“${file.name}” is ${width}×${height} pixels; at most ${maxPixels.toLocaleString("en")} pixels are accepted.`);
    }
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.fillStyle = "#ffffff"; // transparent areas count as white paper
    ctx.fillRect(0, 0, width, height);
    ctx.drawImage(bitmap, 0, 0);
    bitmap.close();
    const rgba = ctx.getImageData(0, 0, width, height).data;
    return { width, height, grey: toGrey(rgba, width * height) };
  }

  async function chooseFile(file) {
    if (!file || state.busy) return;
    clearAnswer();
    showMessage("");
    state.file = null;
    state.prepared = null;
    $("predict").disabled = true;
    if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
    state.previewUrl = null;
    $("preview").hidden = true;
    $("drop").classList.remove("has-image");
    $("file-meta").textContent = `${file.name} · ${formatBytes(file.size)}`;
    try {
      const photo = await decodeFile(file);
      const pre = state.config ? state.config.preprocess : { ink_threshold: 30, digit_box: 20, side: 28 };
      const { pixels, ink } = mnistPixels(photo.grey, photo.width, photo.height, pre);
      state.file = file;
      state.prepared = { pixels, ink, width: photo.width, height: photo.height };
      state.previewUrl = URL.createObjectURL(file);
      $("preview").src = state.previewUrl;
      $("preview").alt = `the chosen photo, ${file.name}`;
      $("preview").hidden = false;
      $("drop").classList.add("has-image");
      $("file-meta").textContent = `${file.name} · ${photo.width}×${photo.height} px · ${formatBytes(file.size)}`;
      drawModelInput(pixels);
      if (ink === 0) {
        showMessage("No digit found: every pixel looks like background. The answer will be meaningless.", "warning");
      } else if (state.config && !state.config.forwarding) {
        showMessage(`The target “${state.config.target}” was not started (--no-start): predictions are off.`, "warning");
      }
      $("predict").disabled = !(state.config && state.config.forwarding);
    } catch (err) {
      drawModelInput(new Uint8Array(784));
      showMessage(err instanceof UserError ? err.message : `Could not read the file: ${err}`);
      setResult("error");
    }
  }

  async function predict() {
    const cfg = state.config;
    if (!cfg || !state.file || !state.prepared || state.busy) return;
    state.busy = true;
    $("predict").disabled = true;
    clearAnswer();
    showMessage("");
    setResult("busy");
    let init;
    let sentBody = null;
    if (cfg.api === "multipart") {
      const form = new FormData();
      form.append("file", state.file, state.file.name);
      init = { method: "POST", body: form };
    } else {
      sentBody = requestBody(cfg.api, wireInstance(state.prepared.pixels, cfg.normalize));
      init = { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(sentBody) };
    }
    init.cache = "no-store";
    try {
      const t0 = performance.now();
      let resp;
      let text;
      try {
        resp = await fetch(cfg.predict_path, init);
        text = await resp.text();
      } catch (err) {
        throw new UserError(`Could not reach the page's server (${err.message || err}). Is \`python -m bench ui\` still running?`);
      }
      const rtt = performance.now() - t0;
      let doc = null;
      try {
        doc = JSON.parse(text);
      } catch {
        doc = null;
      }
      if (!resp.ok) {
        const detail = doc && typeof doc.error === "string" ? doc.error : text.slice(0, 200) || resp.statusText;
        if (doc && doc.source === "proxy") {
          throw new UserError(`The page's server could not get an answer (HTTP ${resp.status}): ${detail}`);
        }
        throw new UserError(`The target “${cfg.target}” answered HTTP ${resp.status}: ${detail}`);
      }
      if (doc === null) throw new UserError(`The target answered HTTP ${resp.status} but not with JSON: ${text.slice(0, 200)}`);
      const { digit, probs } = decodeAnswer(cfg.api, doc);
      $("digit").textContent = String(digit);
      $("rtt").textContent = rtt.toFixed(1);
      const replica = resp.headers.get("X-Replica");
      $("answered-by").textContent = replica ? `${cfg.target} (${replica})` : cfg.target;
      if (probs) showScores(probs, digit);
      window.digitPage.last = { digit, rtt, body: sentBody, pixels: Array.from(state.prepared.pixels), answer: doc };
      setResult("done");
    } catch (err) {
      showMessage(err instanceof UserError ? err.message : `Unexpected error: ${err}`);
      setResult("error");
    } finally {
      state.busy = false;
      $("predict").disabled = !state.file;
    }
  }

  function showScores(probs, digit) {
    const list = $("scores");
    list.replaceChildren();
    probs.forEach((p, d) => {
      const li = document.createElement("li");
      li.className = d === digit ? "best" : "";
      const label = document.createElement("span");
      label.className = "d";
      label.textContent = String(d);
      const bar = document.createElement("span");
      bar.className = "bar";
      const fill = document.createElement("span");
      fill.style.width = `${(p * 100).toFixed(1)}%`;
      bar.append(fill);
      const pct = document.createElement("span");
      pct.className = "p";
      pct.textContent = `${(p * 100).toFixed(1)} %`;
      li.append(label, bar, pct);
      list.append(li);
    });
    list.hidden = false;
    $("scores-note").hidden = false;
  }

  function describeTarget(cfg) {
    const how = {
      multipart: "the photo is sent as is; the Flask app converts it",
      "kserve-v1": "converted here, sent as KServe V1 {\"instances\": …}",
      "kserve-v2": "converted here, sent as a KServe V2 tensor",
    }[cfg.api];
    const line = $("target-line");
    line.replaceChildren();
    const strong = document.createElement("strong");
    strong.textContent = cfg.target;
    line.append("Target ", strong, ` (${cfg.adapter}, ${cfg.where}) → ${cfg.upstream} · ${how}`);
    line.dataset.state = "ready";
    $("input-note").append(cfg.api === "multipart" ? " The target's server does the same conversion itself." : " This is exactly what is sent.");
  }

  async function loadConfig() {
    try {
      const resp = await fetch("config.json", { cache: "no-store" });
      if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
      const cfg = await resp.json();
      if (!["multipart", "kserve-v1", "kserve-v2"].includes(cfg.api)) throw new Error(`unknown API mode ${cfg.api}`);
      state.config = cfg;
      describeTarget(cfg);
      if (!cfg.forwarding) {
        showMessage(`The target “${cfg.target}” was not started (--no-start): predictions are off.`, "warning");
      }
      if (state.prepared) $("predict").disabled = !cfg.forwarding;
    } catch (err) {
      $("target-line").textContent = "Could not load config.json from the page's server.";
      $("target-line").dataset.state = "error";
      showMessage(`The page's settings (config.json) could not be loaded: ${err.message || err}. Reload the page.`);
    }
  }

  function wire() {
    const input = $("file");
    const drop = $("drop");
    input.addEventListener("change", () => chooseFile(input.files[0]));
    ["dragenter", "dragover"].forEach((type) => drop.addEventListener(type, (ev) => {
      ev.preventDefault();
      drop.classList.add("dragging");
    }));
    ["dragleave", "drop"].forEach((type) => drop.addEventListener(type, () => drop.classList.remove("dragging")));
    drop.addEventListener("drop", (ev) => {
      ev.preventDefault();
      const files = ev.dataTransfer ? ev.dataTransfer.files : null;
      if (!files || files.length === 0) {
        showMessage("Nothing to read in what was dropped: drop an image file.");
        return;
      }
      chooseFile(files[0]).then(() => {
        if (files.length > 1 && state.prepared) showMessage(`${files.length} files dropped; using the first.`, "warning");
      });
    });
    // Dropping next to the zone must not navigate away to the file.
    window.addEventListener("dragover", (ev) => ev.preventDefault());
    window.addEventListener("drop", (ev) => ev.preventDefault());
    $("predict").addEventListener("click", predict);
    drawModelInput(new Uint8Array(784));
    loadConfig();
  }

  wire();
})();
