/* Image gateway playground: plain DOM APIs, no framework, no build step, no third-party code.
 *
 * The client key lives in sessionStorage only and leaves the page only as
 * `Authorization: Bearer <key>` on this origin's /v1 calls. Generation is always streamed
 * (fetch + ReadableStream, SSE frames parsed here) so preview frames show as they arrive.
 */
"use strict";

(function () {
  // relative to the page, so a gateway mounted under a path prefix (SCRIPT_NAME) works too
  const API = new URL("v1", location.href).pathname;
  const KEY_STORAGE = "image-gateway-playground.key";
  const EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"};
  const FORMAT_MIME = {png: "image/png", jpeg: "image/jpeg", webp: "image/webp", gif: "image/gif"};
  const IMAGE_PLACEHOLDER = "INPUT_IMAGE_DATA_URL";
  const BASE64_RUN = /^[A-Za-z0-9+/_-]{200,}={0,2}$/;

  const $ = (id) => document.getElementById(id);

  const state = {
    modelsSeq: 0,      // answers of older model-list calls are ignored
    modelsTimer: 0,
    controller: null,  // AbortController of the running generation
    inputImage: null,  // {url, name, type, bytes}
    objectUrls: [],    // download links to revoke on the next run
  };

  // ---------------------------------------------------------------- the key

  function storedKey() {
    try { return sessionStorage.getItem(KEY_STORAGE) || ""; } catch (e) { return ""; }
  }

  function storeKey(key) {
    try {
      if (key) sessionStorage.setItem(KEY_STORAGE, key); else sessionStorage.removeItem(KEY_STORAGE);
    } catch (e) { /* storage disabled: the key then lives in the field only */ }
  }

  function currentKey() {
    return $("key").value.trim();
  }

  function authHeaders(extra) {
    return Object.assign({Authorization: "Bearer " + currentKey()}, extra || {});
  }

  // ---------------------------------------------------------------- errors

  /** The API's {"error": {...}} from a failed response; something readable whatever the body is. */
  async function readError(response) {
    let text = "";
    try { text = await response.text(); } catch (e) { /* body unreadable */ }
    let body = null;
    try { body = JSON.parse(text); } catch (e) { /* not JSON */ }
    const error = body && body.error;
    if (error && typeof error === "object") {
      return {error: Object.assign({}, error, {status: response.status}), body: body};
    }
    if (typeof error === "string" && error) {
      return {error: {message: error, status: response.status}, body: body};
    }
    const snippet = text.trim().slice(0, 300);
    const message = "HTTP " + response.status + (response.statusText ? " " + response.statusText : "") +
      (snippet ? ": " + snippet : " with an empty body");
    return {error: {message: message, status: response.status}, body: body || text};
  }

  function errorDetails(error) {
    const bits = [];
    if (error.code) bits.push("code: " + error.code);
    if (error.param) bits.push("param: " + error.param);
    if (error.type) bits.push("type: " + error.type);
    if (error.status) bits.push("HTTP " + error.status);
    return bits.join(" · ");
  }

  function showErrorIn(box, error, prefix) {
    box.textContent = "";
    const message = document.createElement("strong");
    message.className = "message";
    message.textContent = (prefix || "") + ((error && error.message) || "The gateway answered with an error that has no message");
    box.appendChild(message);
    const details = errorDetails(error || {});
    if (details) {
      const small = document.createElement("span");
      small.className = "details";
      small.textContent = details;
      box.appendChild(small);
    }
    box.hidden = false;
  }

  function showError(error) { showErrorIn($("error"), error); }

  function hideError() {
    $("error").hidden = true;
    $("error").textContent = "";
  }

  // ---------------------------------------------------------------- models

  function setModelsStatus(text) { $("models-status").textContent = text; }

  function scheduleModels() {
    clearTimeout(state.modelsTimer);
    state.modelsTimer = setTimeout(loadModels, 350);
  }

  async function loadModels() {
    clearTimeout(state.modelsTimer);
    const seq = ++state.modelsSeq;
    const select = $("model");
    const box = $("models-error");
    const previous = select.value;
    box.hidden = true;
    if (!currentKey()) {
      select.textContent = "";
      select.disabled = true;
      setModelsStatus("Enter your client key to load the models.");
      updateCurl();
      return;
    }
    setModelsStatus("Loading models…");
    select.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(API + "/models", {headers: authHeaders(), cache: "no-store"});
      if (seq !== state.modelsSeq) return;
      if (!response.ok) {
        const failed = await readError(response);
        if (seq !== state.modelsSeq) return;
        select.textContent = "";
        select.disabled = true;
        setModelsStatus("No models loaded.");
        showErrorIn(box, failed.error, "Could not load the models: ");
        return;
      }
      const body = await response.json();
      if (seq !== state.modelsSeq) return;
      const ids = (Array.isArray(body.data) ? body.data : [])
        .map((model) => model && model.id).filter((id) => typeof id === "string");
      select.textContent = "";
      for (const id of ids) {
        const option = document.createElement("option");
        option.value = id;
        option.textContent = id;
        select.appendChild(option);
      }
      if (ids.includes(previous)) select.value = previous;
      select.disabled = ids.length === 0;
      setModelsStatus(ids.length ? ids.length + (ids.length === 1 ? " model" : " models") + " available."
        : "This gateway lists no models.");
    } catch (e) {
      if (seq !== state.modelsSeq) return;
      select.textContent = "";
      select.disabled = true;
      setModelsStatus("No models loaded.");
      showErrorIn(box, {message: e.message}, "Could not load the models: ");
    } finally {
      if (seq === state.modelsSeq) {
        select.removeAttribute("aria-busy");
        select.dataset.loaded = String(seq);
        updateCurl();
      }
    }
  }

  // ---------------------------------------------------------------- input image

  function formatBytes(bytes) {
    if (bytes < 1024) return bytes + " B";
    if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1) + " KB";
    return (bytes / 1024 / 1024).toFixed(1) + " MB";
  }

  function clearImage() {
    state.inputImage = null;
    $("image").value = "";
    $("image-thumb").removeAttribute("src");
    $("image-preview").hidden = true;
    $("clear-image").hidden = true;
    updateCurl();
  }

  function readImage() {
    const file = $("image").files[0];
    if (!file) { clearImage(); return; }
    const reader = new FileReader();
    reader.onload = () => {
      state.inputImage = {url: reader.result, name: file.name, type: file.type || mimeOf(reader.result),
                          bytes: file.size};
      const thumb = $("image-thumb");
      const caption = $("image-caption");
      caption.textContent = file.name + " · " + formatBytes(file.size);
      thumb.onload = () => {
        caption.textContent = file.name + " · " + thumb.naturalWidth + " × " + thumb.naturalHeight + " px · " +
          formatBytes(file.size);
      };
      thumb.src = reader.result;
      $("image-preview").hidden = false;
      $("clear-image").hidden = false;
      updateCurl();
    };
    reader.onerror = () => showError({message: "Could not read " + file.name + ": " + reader.error});
    reader.readAsDataURL(file);
  }

  // ---------------------------------------------------------------- the request

  function wholeNumber(id, fallback, label) {
    const raw = $(id).value.trim();
    if (raw === "") return {value: fallback};
    const value = Number(raw);
    if (!Number.isInteger(value)) return {problem: label + " must be a whole number"};
    return {value: value};
  }

  /** The form as a chat-completions body; `imageUrl` is what goes in the image_url part. */
  function readForm() {
    const model = $("model").value;
    const prompt = $("prompt").value;
    let size = $("size").value;
    if (size === "custom") {
      size = $("custom-size").value.trim();
      if (!size) return {problem: "Type a custom size such as 640x480, or pick one from the list", focus: "custom-size"};
    }
    const n = wholeNumber("n", 1, "Images (n)");
    if (n.problem) return {problem: n.problem, focus: "n"};
    const partials = wholeNumber("partial-images", 0, "Partial previews");
    if (partials.problem) return {problem: partials.problem, focus: "partial-images"};
    const tool = {};
    if (size && size !== "auto") tool.size = size;
    if ($("quality").value !== "auto") tool.quality = $("quality").value;
    if ($("output-format").value) tool.output_format = $("output-format").value;
    if ($("background").value !== "auto") tool.background = $("background").value;
    if (partials.value !== 0) tool.partial_images = partials.value;
    return {model: model, prompt: prompt, tool: tool, n: n.value, image: state.inputImage};
  }

  function buildBody(form, options) {
    const streaming = options.stream;
    const content = form.image
      ? [{type: "text", text: form.prompt}, {type: "image_url", image_url: {url: options.imageUrl}}]
      : form.prompt;
    const tool = Object.assign({}, form.tool);
    if (!streaming) delete tool.partial_images;  // previews exist only in streams
    const body = {model: form.model, modalities: ["image", "text"], messages: [{role: "user", content: content}]};
    if (Object.keys(tool).length) body.tools = [{type: "image_generation", image_generation: tool}];
    body.n = form.n;
    if (streaming) {
      body.stream = true;
      body.stream_options = {include_usage: true};  // the last chunk then says what it cost
    }
    return body;
  }

  /** One top-level key a line, each value on one line: short, and still easy to edit. */
  function compactJson(body) {
    const lines = Object.keys(body).map((key) => "  " + JSON.stringify(key) + ": " + JSON.stringify(body[key]));
    return "{\n" + lines.join(",\n") + "\n}";
  }

  function shellQuote(text) {
    return "'" + text.replace(/'/g, "'\\''") + "'";
  }

  function updateCurl() {
    const form = readForm();
    const notes = [];
    let command;
    if (form.problem) {
      command = "# " + form.problem;
    } else {
      const body = buildBody(form, {stream: false, imageUrl: IMAGE_PLACEHOLDER});
      command = "curl -s " + shellQuote(location.origin + API + "/chat/completions") + " \\\n" +
        "  -H \"Authorization: Bearer $GATEWAY_KEY\" \\\n" +
        "  -H \"Content-Type: application/json\" \\\n" +
        "  -d " + shellQuote(compactJson(body));
      if (form.image) {
        notes.push("The attached image (" + form.image.name + ", " + formatBytes(form.image.bytes) +
          ") is left out: replace " + IMAGE_PLACEHOLDER + " with its data URL (data:" +
          (form.image.type || "image/png") + ";base64,…) or an https URL of the image.");
      }
      if (form.tool.partial_images) notes.push("partial_images is left out: preview frames exist only in streams.");
      if (!form.model) notes.push("No model chosen yet.");
    }
    $("curl").textContent = command;
    $("curl-note").textContent = notes.join(" ");
    $("curl-note").hidden = notes.length === 0;
  }

  async function copyCurl() {
    const text = $("curl").textContent;
    const say = (message) => { $("copy-status").textContent = message; };
    try {
      await navigator.clipboard.writeText(text);
      say("Copied.");
      return;
    } catch (e) { /* no clipboard API (plain http on a remote host): select the text instead */ }
    const range = document.createRange();
    range.selectNodeContents($("curl"));
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    let copied = false;
    try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
    say(copied ? "Copied." : "Selected: press Ctrl+C (⌘C) to copy.");
  }

  // ---------------------------------------------------------------- base64 shortening

  function shorten(b64) {
    return b64.length <= 24 ? b64 : b64.slice(0, 12) + "…(" + b64.length + " chars)";
  }

  /** A copy of `value` with every base64 payload (data URLs, b64 results) cut to a few characters. */
  function shortenDeep(value) {
    if (typeof value === "string") {
      if (value.startsWith("data:")) {
        const comma = value.indexOf(",");
        if (comma > 0 && value.slice(0, comma).endsWith(";base64")) {
          return value.slice(0, comma + 1) + shorten(value.slice(comma + 1));
        }
      }
      return BASE64_RUN.test(value) ? shorten(value) : value;
    }
    if (Array.isArray(value)) return value.map(shortenDeep);
    if (value && typeof value === "object") {
      const out = {};
      for (const key of Object.keys(value)) out[key] = shortenDeep(value[key]);
      return out;
    }
    return value;
  }

  // ---------------------------------------------------------------- showing images

  function mimeOf(url) {
    const match = /^data:([^;,]+)/.exec(url || "");
    return match ? match[1].toLowerCase() : "";
  }

  function stamp(date) {
    const two = (n) => String(n).padStart(2, "0");
    return date.getFullYear() + two(date.getMonth() + 1) + two(date.getDate()) + "-" +
      two(date.getHours()) + two(date.getMinutes()) + two(date.getSeconds());
  }

  function fileName(run, index, extra, mime) {
    const model = (run.model || "image").replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^[-.]+|-+$/g, "") || "image";
    return model + "-" + stamp(run.startedAt) + "-" + (index + 1) + (extra ? "-" + (extra + 1) : "") + "." +
      (EXTENSIONS[mime] || "bin");
  }

  /** A blob: URL for the download link (data: URLs of several MB make poor hrefs). */
  function downloadUrl(dataUrl) {
    try {
      const comma = dataUrl.indexOf(",");
      const bytes = atob(dataUrl.slice(comma + 1));
      const buffer = new Uint8Array(bytes.length);
      for (let i = 0; i < bytes.length; i++) buffer[i] = bytes.charCodeAt(i);
      const url = URL.createObjectURL(new Blob([buffer], {type: mimeOf(dataUrl) || "application/octet-stream"}));
      state.objectUrls.push(url);
      return url;
    } catch (e) {
      return dataUrl;
    }
  }

  /** The figure of choice `index` (`extra` > 0: a further picture in the same choice, never seen so far). */
  function card(run, index, extra) {
    extra = extra || 0;
    const key = extra ? index + "." + extra : String(index);
    let figure = run.cards.get(key);
    if (figure) return figure;
    figure = document.createElement("figure");
    figure.className = "card";
    figure.dataset.choice = String(index + extra / 100);
    const img = document.createElement("img");
    img.hidden = true;
    const caption = document.createElement("figcaption");
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = "Image " + (index + 1) + (extra ? " (" + (extra + 1) + ")" : "");
    const info = document.createElement("span");
    info.className = "info";
    caption.append(label, info);
    const text = document.createElement("p");
    text.className = "text";
    text.hidden = true;
    figure.append(img, caption, text);
    const results = $("results");
    const after = Array.from(results.children).find((other) => Number(other.dataset.choice) > index);
    results.insertBefore(figure, after || null);
    run.cards.set(key, figure);
    return figure;
  }

  function showPreview(run, slot, part) {
    const url = part && part.image_url && part.image_url.url;
    if (!url) return;
    slot.previews += 1;
    run.previews += 1;
    $("preview-count").textContent = String(run.previews);
    const k = typeof part.partial_image_index === "number" ? part.partial_image_index : slot.previews - 1;
    const figure = document.createElement("figure");
    figure.className = "card preview";
    const img = document.createElement("img");
    img.alt = "Preview " + (k + 1) + " of image " + (slot.index + 1);
    img.src = url;
    const caption = document.createElement("figcaption");
    caption.textContent = "Image " + (slot.index + 1) + " · preview " + (k + 1);
    figure.append(img, caption);
    $("previews").appendChild(figure);
    // until the final picture comes, the image's own place shows the latest preview
    const main = card(run, slot.index);
    if (!main.dataset.final) {
      const mainImg = main.querySelector("img");
      mainImg.hidden = false;
      mainImg.src = url;
      mainImg.alt = "Preview " + (k + 1) + " of image " + (slot.index + 1);
      main.classList.add("pending");
      main.querySelector(".info").textContent = "preview " + (k + 1) + ", waiting for the final image…";
    }
    setStatus("Streaming… " + progress(run), "running");
  }

  function showFinal(run, slot, url) {
    if (!url) return;
    slot.finals += 1;
    run.finals += 1;
    const figure = card(run, slot.index, slot.finals - 1);
    figure.dataset.final = "true";
    figure.classList.remove("pending");
    const img = figure.querySelector("img");
    const info = figure.querySelector(".info");
    const mime = mimeOf(url) || "unknown type";
    img.hidden = false;
    img.dataset.final = "true";
    img.alt = "Image " + (slot.index + 1) + ": " + run.prompt.slice(0, 120);
    info.textContent = "loading… · " + mime;
    img.onload = () => {
      info.textContent = img.naturalWidth + " × " + img.naturalHeight + " px · " + mime;
      figure.dataset.width = String(img.naturalWidth);
      figure.dataset.height = String(img.naturalHeight);
    };
    img.onerror = () => { info.textContent = "the browser could not decode this " + mime + " image"; };
    img.src = url;
    const link = document.createElement("a");
    link.className = "download";
    link.href = downloadUrl(url);
    link.download = fileName(run, slot.index, slot.finals - 1, mimeOf(url));
    link.textContent = "Download " + (EXTENSIONS[mimeOf(url)] || "file").toUpperCase();
    link.title = link.download;
    figure.querySelector("figcaption").appendChild(link);
    setStatus("Streaming… " + progress(run), "running");
  }

  function showText(run, slot) {
    if (!slot.text) return;
    const figure = card(run, slot.index);
    const text = figure.querySelector(".text");
    text.textContent = slot.text;
    text.hidden = false;
  }

  function progress(run) {
    return run.finals + " of " + run.n + (run.n === 1 ? " image" : " images") +
      (run.previews ? ", " + run.previews + (run.previews === 1 ? " preview" : " previews") : "");
  }

  // ---------------------------------------------------------------- the stream

  function newRun(form) {
    return {
      model: form.model, prompt: form.prompt, n: form.n, startedAt: new Date(), t0: performance.now(),
      id: null, created: null, usage: null, error: null, body: null,
      chunks: 0, keepAlives: 0, previews: 0, finals: 0, done: false,
      slots: new Map(), cards: new Map(),
    };
  }

  function slotOf(run, index) {
    let slot = run.slots.get(index);
    if (!slot) {
      slot = {index: index, role: "assistant", text: "", parts: [], images: [], toolCalls: [], listContent: false,
              finishReason: null, previews: 0, finals: 0};
      run.slots.set(index, slot);
    }
    return slot;
  }

  function urlOfPart(part) {
    return part && part.type === "image_url" && part.image_url && part.image_url.url;
  }

  function toolImageUrls(toolCalls) {
    const urls = [];
    for (const call of toolCalls) {
      const details = call && call.image_generation;
      if (details && details.result) {
        urls.push("data:" + (FORMAT_MIME[details.output_format] || "image/png") + ";base64," + details.result);
      }
    }
    return urls;
  }

  function handleChunk(run, chunk) {
    run.chunks += 1;
    run.id = run.id || chunk.id || null;
    run.created = run.created || chunk.created || null;
    if (chunk.model) run.model = chunk.model;
    if (chunk.usage) run.usage = chunk.usage;
    for (const choice of chunk.choices || []) {
      const slot = slotOf(run, typeof choice.index === "number" ? choice.index : 0);
      const delta = choice.delta || {};
      if (delta.role) slot.role = delta.role;
      if (typeof delta.content === "string" && delta.content) {
        slot.text += delta.content;
        showText(run, slot);
      } else if (Array.isArray(delta.content)) {
        slot.listContent = true;
        slot.parts.push(...delta.content);
      }
      if (Array.isArray(delta.partial_images)) {
        for (const part of delta.partial_images) showPreview(run, slot, part);
      }
      let finals = [];
      if (Array.isArray(delta.images)) {
        slot.images.push(...delta.images);
        finals = delta.images.map(urlOfPart);
      } else if (Array.isArray(delta.content)) {
        finals = delta.content.map(urlOfPart);
      }
      if (Array.isArray(delta.tool_calls)) {
        slot.toolCalls.push(...delta.tool_calls.map((call) => {
          const copy = Object.assign({}, call);
          delete copy.index;
          return copy;
        }));
        if (!finals.filter(Boolean).length) finals = toolImageUrls(delta.tool_calls);
      }
      for (const url of finals) if (url) showFinal(run, slot, url);
      if (choice.finish_reason) slot.finishReason = choice.finish_reason;
    }
  }

  /** One SSE event block: "done" on [DONE]; keep-alive comments and unknown fields are skipped. */
  function handleEvent(run, block) {
    const data = [];
    let comment = false;
    for (const line of block.split("\n")) {
      if (line === "") continue;
      if (line.startsWith(":")) { comment = true; continue; }
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") data.push(value);
    }
    if (!data.length) {
      if (comment) {
        run.keepAlives += 1;
        if (!run.chunks || !run.finals) setStatus("Waiting for the provider… " + progress(run), "running");
      }
      return null;
    }
    const payload = data.join("\n");
    if (payload === "[DONE]") return "done";
    let frame;
    try {
      frame = JSON.parse(payload);
    } catch (e) {
      throw new Error("The stream sent a frame that is not JSON: " + payload.slice(0, 120));
    }
    if (frame && frame.error) {
      run.error = typeof frame.error === "object" ? frame.error : {message: String(frame.error)};
      showError(run.error);
      return null;
    }
    handleChunk(run, frame);
    return null;
  }

  async function readStream(run, response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let carry = "";
    let scanFrom = 0;
    for (;;) {
      const {value, done} = await reader.read();
      let text = carry + (done ? decoder.decode() : decoder.decode(value, {stream: true}));
      carry = "";
      if (!done && text.endsWith("\r")) { carry = "\r"; text = text.slice(0, -1); }
      buffer += text.replace(/\r\n?/g, "\n");
      let boundary;
      while ((boundary = buffer.indexOf("\n\n", scanFrom)) >= 0) {
        const block = buffer.slice(0, boundary);
        buffer = buffer.slice(boundary + 2);
        scanFrom = 0;
        if (handleEvent(run, block) === "done") {
          run.done = true;
          reader.cancel().catch(() => {});
          return;
        }
      }
      scanFrom = Math.max(0, buffer.length - 1);
      if (done) break;
    }
    if (buffer.trim() && handleEvent(run, buffer) === "done") {
      run.done = true;
      return;
    }
    if (!run.error) {
      run.error = {message: "The stream ended before data: [DONE]; the answer may be incomplete"};
      showError(run.error);
    }
  }

  /** A non-streamed answer (a gateway that ignored stream: true) shown the same way. */
  function handleCompletion(run, answer) {
    run.body = answer;
    run.id = answer.id;
    run.usage = answer.usage || null;
    for (const choice of answer.choices || []) {
      const message = choice.message || {};
      const slot = slotOf(run, choice.index || 0);
      slot.finishReason = choice.finish_reason;
      if (typeof message.content === "string") slot.text = message.content;
      else if (Array.isArray(message.content)) {
        slot.text = message.content.filter((p) => p && p.type === "text").map((p) => p.text).join("\n");
      }
      showText(run, slot);
      let urls = (message.images || []).map(urlOfPart);
      if (!urls.length && Array.isArray(message.content)) urls = message.content.map(urlOfPart);
      if (!urls.filter(Boolean).length && message.tool_calls) urls = toolImageUrls(message.tool_calls);
      for (const url of urls) if (url) showFinal(run, slot, url);
    }
    run.done = true;
  }

  /** A chat.completion-like object rebuilt from the chunks, for the raw view. */
  function rebuilt(run) {
    if (run.body) return run.body;
    const choices = Array.from(run.slots.values()).sort((a, b) => a.index - b.index).map((slot) => {
      const message = {role: slot.role};
      if (slot.listContent) {
        message.content = (slot.text ? [{type: "text", text: slot.text}] : []).concat(slot.parts);
        message.images = slot.images;
      } else {
        message.content = slot.text || null;
      }
      if (slot.toolCalls.length) message.tool_calls = slot.toolCalls;
      return {index: slot.index, message: message, finish_reason: slot.finishReason, logprobs: null};
    });
    const answer = {id: run.id, object: "chat.completion", created: run.created, model: run.model, choices: choices};
    if (run.usage) answer.usage = run.usage;
    if (run.error) answer.error = run.error;
    return answer;
  }

  function showRaw(run) {
    const what = run.body ? "the answer" : "the stream";
    $("raw").textContent = JSON.stringify(shortenDeep(rebuilt(run)), null, 2);
    $("raw-details").querySelector("summary").textContent = run.body
      ? "JSON answer (base64 shortened)"
      : "JSON rebuilt from " + what + ": " + run.chunks + " chunks, " + run.previews + " preview frames, " +
        run.keepAlives + " keep-alives (base64 shortened)";
  }

  // ---------------------------------------------------------------- generate

  function setStatus(text, phase) {
    $("status").textContent = text;
    $("status").dataset.state = phase;
  }

  function setBusy(busy) {
    $("generate").disabled = busy;
    $("stop").disabled = !busy;
    $("results-section").setAttribute("aria-busy", busy ? "true" : "false");
  }

  function resetOutput() {
    for (const url of state.objectUrls) URL.revokeObjectURL(url);
    state.objectUrls = [];
    $("results").textContent = "";
    $("previews").textContent = "";
    $("preview-count").textContent = "0";
    $("meta").textContent = "";
    $("raw").textContent = "";
    $("raw-details").querySelector("summary").textContent = "JSON rebuilt from the stream (base64 shortened)";
    hideError();
  }

  function showMeta(run, response) {
    const bits = [];
    const provider = response.headers.get("x-gateway-provider");
    const dropped = response.headers.get("x-gateway-dropped-params");
    if (provider) bits.push("provider: " + provider);
    if (dropped) bits.push("dropped parameters: " + dropped);
    run.meta = bits;
    $("meta").textContent = bits.join(" · ");
  }

  /** What the generation cost, from the answer's usage.cost (null: the gateway has no price for the model). */
  function showCost(run) {
    if (!run.usage || !("cost" in run.usage)) return;
    const cost = run.usage.cost;
    const text = cost === null ? "cost: unknown (no price for this model)"
      : "cost: $" + Number(cost.toFixed(6)).toString();
    run.meta = (run.meta || []).concat([text]);
    $("meta").textContent = run.meta.join(" · ");
  }

  async function generate(event) {
    event.preventDefault();
    if (state.controller) return;
    // a new run starts here, even one refused below: nothing of the previous run stays on screen
    resetOutput();
    setStatus("", "idle");
    if (!currentKey()) {
      showError({message: "Enter your client key first."});
      $("key").focus();
      return;
    }
    const form = readForm();
    if (form.problem) {
      showError({message: form.problem});
      if (form.focus) $(form.focus).focus();
      return;
    }
    if (!form.model) {
      showError({message: "Choose a model first (the list comes from GET /v1/models with your key)."});
      return;
    }
    updateCurl();
    const run = newRun(form);
    const body = buildBody(form, {stream: true, imageUrl: form.image && form.image.url});
    const controller = new AbortController();
    state.controller = controller;
    setBusy(true);
    setStatus("Sending…", "running");
    try {
      const response = await fetch(API + "/chat/completions", {
        method: "POST",
        headers: authHeaders({"Content-Type": "application/json", Accept: "text/event-stream"}),
        body: JSON.stringify(body),
        signal: controller.signal,
        cache: "no-store",
      });
      showMeta(run, response);
      if (!response.ok) {
        const failed = await readError(response);
        run.error = failed.error;
        run.body = failed.body;
        showError(failed.error);
      } else if ((response.headers.get("Content-Type") || "").includes("text/event-stream")) {
        setStatus("Waiting for the provider…", "running");
        await readStream(run, response);
      } else {
        handleCompletion(run, await response.json());
      }
    } catch (e) {
      if (e.name === "AbortError") {
        run.stopped = true;
      } else {
        run.error = {message: "The request failed: " + e.message};
        showError(run.error);
      }
    } finally {
      state.controller = null;
      setBusy(false);
      const elapsed = (performance.now() - run.t0) / 1000;
      const seconds = elapsed.toFixed(elapsed < 10 ? 2 : 1);
      if (run.stopped) {
        setStatus("Stopped after " + seconds + " s: " + progress(run) + ".", "stopped");
      } else if (run.error) {
        setStatus("Failed after " + seconds + " s: " + progress(run) + ".", "error");
      } else if (!run.finals) {
        const reasons = Array.from(run.slots.values()).map((s) => s.finishReason).filter(Boolean);
        setStatus("No image after " + seconds + " s" + (reasons.length ? " (finish_reason: " + reasons.join(", ") + ")" : ""),
                  "done");
      } else {
        setStatus("Done in " + seconds + " s: " + progress(run) + ".", "done");
      }
      showCost(run);
      showRaw(run);
    }
  }

  // ---------------------------------------------------------------- wiring

  function init() {
    const key = storedKey();
    if (key) $("key").value = key;
    $("key").addEventListener("input", () => {
      storeKey(currentKey());
      scheduleModels();
    });
    $("forget-key").addEventListener("click", () => {
      $("key").value = "";
      storeKey("");
      loadModels();
      $("key").focus();
    });
    $("key").addEventListener("keydown", (event) => {
      if (event.key === "Enter") {  // Enter in the key field reloads the models, it does not generate
        event.preventDefault();
        loadModels();
      }
    });
    $("prompt").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        $("form").requestSubmit();
      }
    });
    $("reload-models").addEventListener("click", loadModels);
    $("size").addEventListener("change", () => {
      const custom = $("size").value === "custom";
      $("custom-size-box").hidden = !custom;
      if (custom) $("custom-size").focus();
    });
    $("image").addEventListener("change", readImage);
    $("clear-image").addEventListener("click", clearImage);
    $("form").addEventListener("submit", generate);
    $("form").addEventListener("input", (event) => { if (event.target.id !== "key") updateCurl(); });
    $("form").addEventListener("change", (event) => { if (event.target.id !== "key") updateCurl(); });
    $("stop").addEventListener("click", () => { if (state.controller) state.controller.abort(); });
    $("copy-curl").addEventListener("click", copyCurl);
    updateCurl();
    if (key) loadModels();
  }

  init();
})();
