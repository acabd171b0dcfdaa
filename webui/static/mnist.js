// Photo -> model input, and model answers -> digit: the wire side of the digit page.
//
// Why this mirrors Python step by step: a KServe predictor takes model input, not photos,
// so for KServe targets the page does what the Flask app's preprocess_photo does on the
// server (targets/flask/server/app.py) and what models.data.normalize / wire_pixels do: PIL's
// "L" conversion, the light-background inversion, the ink crop, the square padding,
// PIL's LANCZOS resize to 20x20 (same coefficients, same fixed-point rounding as
// Pillow's Resample.c), float32 normalisation and rounding to 4 decimals.  The browser
// tests check that these pixels equal preprocess_photo's and the numbers wire_instance's.
// No DOM access here: digit.js is the page.
"use strict";

window.servebenchMnist = (() => {
  const f32 = Math.fround;

  /** An error whose message is meant for the user as it is. */
  class UserError extends Error {}

  // ---------------------------------------------------------------- preprocessing --

  /** RGBA bytes -> grey bytes, as PIL's RGB->L: (R*19595 + G*38470 + B*7471 + 0x8000) >> 16. */
  function toGrey(rgba, count) {
    const grey = new Uint8Array(count);
    for (let i = 0, j = 0; i < count; i += 1, j += 4) {
      grey[i] = (rgba[j] * 19595 + rgba[j + 1] * 38470 + rgba[j + 2] * 7471 + 0x8000) >>> 16;
    }
    return grey;
  }

  function sinc(x) {
    if (x === 0) return 1;
    const px = x * Math.PI;
    return Math.sin(px) / px;
  }

  /** PIL's lanczos filter (support 3). */
  function lanczos(x) {
    return x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0;
  }

  const PRECISION_BITS = 32 - 8 - 2;
  const ONE = 2 ** PRECISION_BITS;

  /** PIL's precompute_coeffs + normalize_coeffs_8bpc for one axis (Resample.c). */
  function coefficients(inSize, outSize) {
    const scale = inSize / outSize;
    const filterScale = Math.max(scale, 1);
    const support = 3 * filterScale;
    const out = [];
    for (let xx = 0; xx < outSize; xx += 1) {
      const center = (xx + 0.5) * scale;
      const ss = 1 / filterScale;
      const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
      const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
      const weights = [];
      let total = 0;
      for (let x = 0; x < xmax; x += 1) {
        const w = lanczos((x + xmin - center + 0.5) * ss);
        weights.push(w);
        total += w;
      }
      const fixed = weights.map((w) => {
        const k = total !== 0 ? w / total : w;
        return k < 0 ? Math.trunc(-0.5 + k * ONE) : Math.trunc(0.5 + k * ONE);
      });
      out.push({ xmin, fixed });
    }
    return out;
  }

  function clip8(value) {
    if (value >= ONE * 256) return 255;
    if (value <= 0) return 0;
    return Math.floor(value / ONE);
  }

  /** PIL's Image.resize(..., LANCZOS) of an 8-bit grey image: horizontal pass, then vertical. */
  function resizeLanczos(src, width, height, outW, outH) {
    let cur = src;
    let curW = width;
    if (outW !== width) {
      const kx = coefficients(width, outW);
      const tmp = new Uint8Array(outW * height);
      for (let y = 0; y < height; y += 1) {
        for (let xx = 0; xx < outW; xx += 1) {
          const { xmin, fixed } = kx[xx];
          let acc = ONE / 2;
          for (let x = 0; x < fixed.length; x += 1) acc += cur[y * curW + xmin + x] * fixed[x];
          tmp[y * outW + xx] = clip8(acc);
        }
      }
      cur = tmp;
      curW = outW;
    }
    if (outH !== height) {
      const ky = coefficients(height, outH);
      const tmp = new Uint8Array(curW * outH);
      for (let yy = 0; yy < outH; yy += 1) {
        const { xmin: ymin, fixed } = ky[yy];
        for (let x = 0; x < curW; x += 1) {
          let acc = ONE / 2;
          for (let y = 0; y < fixed.length; y += 1) acc += cur[(ymin + y) * curW + x] * fixed[y];
          tmp[yy * curW + x] = clip8(acc);
        }
      }
      cur = tmp;
    }
    return cur;
  }

  /**
   * Grey photo -> 28x28 MNIST-like pixels (preprocess_photo): invert when the mean is over
   * 127, subtract the background level (lower median), crop the pixels over the ink threshold, pad to a centred square, resize to 20x20,
   * centre in 28x28.  Returns {pixels: Uint8Array(784), ink: number of ink pixels}.
   */
  function mnistPixels(greyIn, width, height, pre) {
    const n = width * height;
    let sum = 0;
    for (let i = 0; i < n; i += 1) sum += greyIn[i];
    const inverted = sum / n > 127 ? greyIn.map((v) => 255 - v) : greyIn;
    // Background level = the lower median (most of a photo is paper), taken off every pixel.
    const hist = new Uint32Array(256);
    for (let i = 0; i < n; i += 1) hist[inverted[i]] += 1;
    const k = Math.floor((n - 1) / 2);
    let background = 0;
    for (let v = 0, seen = 0; v < 256; v += 1) {
      seen += hist[v];
      if (seen > k) {
        background = v;
        break;
      }
    }
    const grey = background ? inverted.map((v) => (v > background ? v - background : 0)) : inverted;
    let top = height;
    let left = width;
    let bottom = -1;
    let right = -1;
    let ink = 0;
    for (let y = 0; y < height; y += 1) {
      for (let x = 0; x < width; x += 1) {
        if (grey[y * width + x] > pre.ink_threshold) {
          ink += 1;
          if (y < top) top = y;
          if (y > bottom) bottom = y;
          if (x < left) left = x;
          if (x > right) right = x;
        }
      }
    }
    const side = pre.side;
    const box = pre.digit_box;
    const pixels = new Uint8Array(side * side);
    if (ink === 0) return { pixels, ink };
    const cropH = bottom + 1 - top;
    const cropW = right + 1 - left;
    const sq = Math.max(cropH, cropW);
    const square = new Uint8Array(sq * sq);
    const oy = Math.floor((sq - cropH) / 2);
    const ox = Math.floor((sq - cropW) / 2);
    for (let y = 0; y < cropH; y += 1) {
      for (let x = 0; x < cropW; x += 1) square[(oy + y) * sq + ox + x] = grey[(top + y) * width + left + x];
    }
    const small = resizeLanczos(square, sq, sq, box, box);
    const off = (side - box) / 2;
    for (let y = 0; y < box; y += 1) {
      for (let x = 0; x < box; x += 1) pixels[(off + y) * side + off + x] = small[y * box + x];
    }
    return { pixels, ink };
  }

  /** numpy's rint: round half to even. */
  function rint(x) {
    const fl = Math.floor(x);
    const d = x - fl;
    if (d < 0.5) return fl;
    if (d > 0.5) return fl + 1;
    return fl % 2 === 0 ? fl : fl + 1;
  }

  /**
   * 784 pixels -> 28 rows of model input, the numbers wire_instance sends:
   * normalize() in float32, np.round(.., 4) in float32, then again in float64.
   */
  function wireInstance(pixels, norm) {
    const mean = f32(norm.mean);
    const std = f32(norm.std);
    const scale = 10 ** norm.decimals;
    const scale32 = f32(scale);
    const rows = [];
    for (let y = 0; y < 28; y += 1) {
      const row = [];
      for (let x = 0; x < 28; x += 1) {
        const v = f32(f32(f32(pixels[y * 28 + x] / f32(255)) - mean) / std);
        const r32 = f32(rint(f32(v * scale32)) / scale32);
        let r64 = rint(r32 * scale) / scale;
        if (Object.is(r64, -0)) r64 = 0;
        row.push(r64);
      }
      rows.push(row);
    }
    return rows;
  }

  function requestBody(api, instance) {
    if (api === "kserve-v1") return { instances: [instance] };
    return { inputs: [{ name: "pixels", shape: [1, 28, 28], datatype: "FP32", data: instance.flat() }] };
  }

  // -------------------------------------------------------------------- answers --

  function argmax(values) {
    let best = 0;
    for (let i = 1; i < values.length; i += 1) if (values[i] > values[best]) best = i;
    return best;
  }

  function softmax(values) {
    const top = Math.max(...values);
    const exps = values.map((v) => Math.exp(v - top));
    const total = exps.reduce((a, b) => a + b, 0);
    return exps.map((e) => e / total);
  }

  function isLogits(values) {
    return Array.isArray(values) && values.length === 10 && values.every((v) => typeof v === "number" && Number.isFinite(v));
  }

  /** A 2xx answer -> {digit, probs|null}; the shapes of targets/*_target.py decode(). */
  function decodeAnswer(api, doc) {
    const bad = (what) => new UserError(`The target answered, but not with a prediction: ${what}.`);
    if (doc === null || typeof doc !== "object") throw bad("the answer is not a JSON object");
    if (api === "multipart") {
      const preds = doc.predictions;
      if (!Array.isArray(preds) || preds.length !== 1) throw bad("expected {\"predictions\": [digit]}");
      const digit = preds[0];
      if (!Number.isInteger(digit) || digit < 0 || digit > 9) throw bad(`prediction ${JSON.stringify(digit)} is not a digit`);
      return { digit, probs: null };
    }
    let logits;
    if (api === "kserve-v1") {
      logits = Array.isArray(doc.predictions) && doc.predictions.length === 1 ? doc.predictions[0] : null;
    } else {
      const out = Array.isArray(doc.outputs) && doc.outputs.length === 1 ? doc.outputs[0] : null;
      logits = out && Array.isArray(out.data) ? out.data.flat() : null;
    }
    if (!isLogits(logits)) throw bad("expected 10 logits for one image");
    return { digit: argmax(logits), probs: softmax(logits) };
  }

  return { UserError, toGrey, resizeLanczos, mnistPixels, wireInstance, requestBody, decodeAnswer };
})();
