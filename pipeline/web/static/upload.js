// The upload page: files dropped or chosen are sent one after another to the application's
// resumable uploads (tus 1.0 at /api/v1/uploads) with the browser's session and its CSRF token.
// Each file's SHA-256 is declared when its upload is made and each chunk carries its own, so the
// server keeps only the very bytes chosen. An unfinished upload's address is kept in localStorage
// (by name, size and modification time): choosing the same file again, even after a reload, asks
// the server how much it holds and goes on from there. A file's Cancel button stops its transfer
// and ends its upload on the server, or takes it out of the queue if it is still waiting. No
// external code, no inline script.
"use strict";

(function () {
  const root = document.getElementById("upload");
  if (!root) return;
  const texts = root.dataset;
  const endpoint = texts.endpoint;
  const csrf = texts.csrf;
  const chunkSize = parseInt(texts.chunkSize, 10) || 8 * 1024 * 1024;
  const RETRIES = 5;
  const STORE = "evidence-upload:";
  const queue = [];
  let busy = false;

  // ------------------------------------------------------------------------------------ SHA-256
  // The whole file is hashed a slice at a time (WebCrypto can only hash a buffer whole, and a
  // recording may be larger than memory allows); a chunk is hashed by WebCrypto when the page
  // has it (a secure context), by the same code otherwise.
  const K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ]);

  class Sha256 {
    constructor() {
      this.h = new Uint32Array([
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
      ]);
      this.w = new Uint32Array(64);
      this.block = new Uint8Array(64);
      this.filled = 0;
      this.length = 0; // bytes hashed so far
    }

    compress(bytes, at) {
      const w = this.w;
      const h = this.h;
      for (let i = 0; i < 16; i++) {
        const j = at + i * 4;
        w[i] = (bytes[j] << 24) | (bytes[j + 1] << 16) | (bytes[j + 2] << 8) | bytes[j + 3];
      }
      for (let i = 16; i < 64; i++) {
        const a = w[i - 15];
        const b = w[i - 2];
        const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
        const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
      }
      let [a, b, c, d, e, f, g, k] = h;
      for (let i = 0; i < 64; i++) {
        const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        const t1 = (k + s1 + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
        const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
        k = g;
        g = f;
        f = e;
        e = (d + t1) | 0;
        d = c;
        c = b;
        b = a;
        a = (t1 + t2) | 0;
      }
      h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
    }

    update(bytes) {
      let at = 0;
      this.length += bytes.length;
      if (this.filled) {
        const take = Math.min(64 - this.filled, bytes.length);
        this.block.set(bytes.subarray(0, take), this.filled);
        this.filled += take;
        at = take;
        if (this.filled < 64) return;
        this.compress(this.block, 0);
        this.filled = 0;
      }
      for (; at + 64 <= bytes.length; at += 64) this.compress(bytes, at);
      this.block.set(bytes.subarray(at), 0);
      this.filled = bytes.length - at;
    }

    digest() {
      const bits = this.length * 8;
      const tail = new Uint8Array(this.filled < 56 ? 64 - this.filled : 128 - this.filled);
      tail[0] = 0x80;
      const view = new DataView(tail.buffer);
      view.setUint32(tail.length - 8, Math.floor(bits / 0x100000000));
      view.setUint32(tail.length - 4, bits >>> 0);
      this.update(tail);
      const out = new Uint8Array(32);
      const outView = new DataView(out.buffer);
      this.h.forEach((word, i) => outView.setUint32(i * 4, word));
      return out;
    }
  }

  function hex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function base64(bytes) {
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(text);
  }

  async function fileDigest(file, job, onProgress) {
    const hash = new Sha256();
    for (let at = 0; at < file.size; at += chunkSize) {
      if (job.cancelled) throw new Cancelled();
      hash.update(new Uint8Array(await file.slice(at, at + chunkSize).arrayBuffer()));
      onProgress(Math.min(at + chunkSize, file.size));
    }
    return hex(hash.digest());
  }

  async function chunkDigest(buffer) {
    if (window.crypto && crypto.subtle) {
      return new Uint8Array(await crypto.subtle.digest("SHA-256", buffer));
    }
    const hash = new Sha256();
    hash.update(new Uint8Array(buffer));
    return hash.digest();
  }

  function metadata(values) {
    const encoder = new TextEncoder();
    return Object.entries(values)
      .map(([key, value]) => key + " " + base64(encoder.encode(value)))
      .join(",");
  }

  // ----------------------------------------------------------------------------------- requests
  class Refused extends Error {
    constructor(status) {
      super("refused " + status);
      this.status = status;
    }
  }

  // The file's Cancel button was pressed.
  class Cancelled extends Error {
    constructor() {
      super("cancelled");
    }
  }

  // One request; resolves with the XHR whatever its status (0: no answer), reports upload progress.
  // A request made for a job is refused once the job is cancelled, and cancelling aborts it.
  function request(method, url, headers, body, onSent, job) {
    return new Promise((resolve, reject) => {
      if (job && job.cancelled) {
        reject(new Cancelled());
        return;
      }
      const xhr = new XMLHttpRequest();
      xhr.open(method, url);
      xhr.setRequestHeader("Tus-Resumable", "1.0.0");
      if (method !== "HEAD" && method !== "GET") xhr.setRequestHeader("X-CSRF-Token", csrf);
      Object.entries(headers).forEach(([name, value]) => xhr.setRequestHeader(name, value));
      if (onSent) xhr.upload.onprogress = (event) => onSent(event.loaded);
      xhr.timeout = 120000;
      xhr.onload = () => {
        if (job) job.xhr = null;
        resolve(xhr); // an answer that came is taken even if the job was cancelled meanwhile
      };
      xhr.onerror = xhr.ontimeout = xhr.onabort = () => {
        if (job) job.xhr = null;
        if (job && job.cancelled) reject(new Cancelled());
        else resolve({ status: 0, getResponseHeader: () => null });
      };
      if (job) job.xhr = xhr;
      xhr.send(body === undefined ? null : body);
    });
  }

  function passing(status) {
    return status === 0 || status === 409 || status === 460 || status === 429 || (status >= 500 && status !== 507);
  }

  // A wait growing with the failures; a job's wait ends at once when it is cancelled.
  function pause(failures, job) {
    const delay = Math.min(500 * 2 ** (failures - 1), 30000) * (0.5 + Math.random() / 2);
    return new Promise((resolve) => {
      const timer = setTimeout(done, delay);
      function done() {
        clearTimeout(timer);
        if (job) job.wake = null;
        resolve();
      }
      if (job) job.wake = done;
    });
  }

  function standing(xhr) {
    return {
      offset: parseInt(xhr.getResponseHeader("Upload-Offset"), 10),
      item: xhr.getResponseHeader("Evidence-Item"),
      error: xhr.getResponseHeader("Evidence-Error"),
      duplicate: (xhr.getResponseHeader("Evidence-Status") || "").toLowerCase() === "duplicate",
    };
  }

  // Where the server stands with an upload; retried while the network or server fails.
  async function head(url, job) {
    for (let failures = 0; ; ) {
      const xhr = await request("HEAD", url, {}, undefined, null, job);
      if (xhr.status >= 200 && xhr.status < 300) return standing(xhr);
      if (!passing(xhr.status) || ++failures > RETRIES) throw new Refused(xhr.status);
      await pause(failures, job);
    }
  }

  async function create(file, digest, dock, job) {
    const values = { filename: file.name, sha256: digest };
    if (dock) values.dock = dock;
    for (let failures = 0; ; ) {
      const headers = { "Upload-Length": String(file.size), "Upload-Metadata": metadata(values) };
      const xhr = await request("POST", endpoint, headers, undefined, null, job);
      if (xhr.status === 201 && xhr.getResponseHeader("Location")) {
        return new URL(xhr.getResponseHeader("Location"), new URL(endpoint, location.href)).href;
      }
      if (!passing(xhr.status) || ++failures > RETRIES) throw new Refused(xhr.status);
      await pause(failures, job);
    }
  }

  // Ends an unfinished upload on the server, its bytes removed. Resolves with where the server
  // stands when the upload was complete already and could no longer be ended, null otherwise.
  async function terminate(url) {
    for (let failures = 0; ; ) {
      const xhr = await request("DELETE", url, {});
      if (xhr.status === 204 || xhr.status === 404 || xhr.status === 410) return null;
      if (xhr.status === 409) {
        const state = await head(url); // a piece still being written, or taken in already
        if (state.item || state.error) return state;
      }
      if (!passing(xhr.status) || ++failures > RETRIES) throw new Refused(xhr.status);
      await pause(failures);
    }
  }

  // ----------------------------------------------------------------------------------- one file
  function row(file, onCancel) {
    const list = document.getElementById("upload-list");
    list.hidden = false;
    const tr = document.createElement("tr");
    const name = document.createElement("td");
    name.className = "name";
    name.textContent = file.name;
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    const cell = document.createElement("td");
    cell.appendChild(bar);
    const status = document.createElement("td");
    status.className = "status";
    status.textContent = texts.tWaiting;
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "cancel";
    cancel.textContent = texts.tCancel;
    cancel.setAttribute("aria-label", texts.tCancel + ": " + file.name);
    cancel.addEventListener("click", onCancel);
    const actions = document.createElement("td");
    actions.className = "actions";
    actions.appendChild(cancel);
    tr.append(name, cell, status, actions);
    list.tBodies[0].appendChild(tr);

    // No more cancelling; the keyboard's focus goes on to the next file's button.
    function uncancellable() {
      if (!cancel.isConnected) return;
      const focused = document.activeElement === cancel;
      cancel.remove();
      if (focused) (list.querySelector("button.cancel") || document.getElementById("upload-files")).focus();
    }

    function settle(state) {
      tr.dataset.state = state;
      uncancellable();
    }

    return {
      tr,
      uncancellable,
      show(text, done) {
        status.textContent = text;
        if (done !== undefined && file.size) bar.value = Math.floor((done / file.size) * 100);
      },
      finish(outcome, item) {
        bar.value = 100;
        status.textContent = texts[outcome === "duplicate" ? "tDuplicate" : "tUploaded"] + " ";
        const link = document.createElement("a");
        link.href = "/items/" + encodeURIComponent(item);
        link.textContent = texts.tOpen;
        status.appendChild(link);
        tr.dataset.item = item;
        settle("done");
      },
      fail(reason) {
        status.textContent = texts.tFailed + ": " + reason;
        status.setAttribute("role", "alert");
        settle("failed");
      },
      cancelled() {
        status.textContent = texts.tCancelled;
        settle("cancelled");
      },
    };
  }

  function reason(error) {
    if (!(error instanceof Refused)) return String(error && error.message ? error.message : error);
    if (error.status === 0 || (error.status >= 500 && error.status !== 507)) return texts.tRefusedNetwork;
    if (error.status === 410) return texts.tRefused404;
    const text = texts["tRefused" + error.status];
    return text || texts.tRefusedOther + " (" + error.status + ")";
  }

  async function send(job) {
    const { file, key, view } = job;
    job.url = localStorage.getItem(key);
    let state = null;
    if (job.url) {
      try {
        state = await head(job.url, job);
        view.show(texts.tResuming, state.offset);
      } catch (error) {
        if (!(error instanceof Refused) || (error.status !== 404 && error.status !== 410)) throw error;
        localStorage.removeItem(key);
        job.url = null;
      }
    }
    if (!job.url) {
      view.show(texts.tHashing, 0);
      const digest = await fileDigest(file, job, (done) =>
        view.show(texts.tHashing + " " + Math.floor((done / file.size) * 100) + "%"),
      );
      job.url = await create(file, digest, job.dock, job);
      localStorage.setItem(key, job.url);
      state = { offset: 0, item: null, error: null, duplicate: false };
    }
    const url = job.url;
    let failures = 0;
    while (!state.item && !state.error) {
      if (state.offset >= file.size) {
        // every byte is there: the server names the item once it is taken in
        view.uncancellable();
        view.show(texts.tFinishing, file.size);
        if (++failures > RETRIES) throw new Refused(0);
        await pause(failures, job);
        state = await head(url, job);
        continue;
      }
      const start = state.offset;
      const buffer = await file.slice(start, start + chunkSize).arrayBuffer();
      const checksum = "sha256 " + base64(await chunkDigest(buffer));
      view.show(texts.tUploading, start);
      const xhr = await request(
        "PATCH",
        url,
        {
          "Content-Type": "application/offset+octet-stream",
          "Upload-Offset": String(start),
          "Upload-Checksum": checksum,
        },
        buffer,
        (sent) => view.show(texts.tUploading, start + sent),
        job,
      );
      if (xhr.status === 204) {
        state = standing(xhr);
        if (isNaN(state.offset)) state.offset = start;
        failures = 0;
        continue;
      }
      if (!passing(xhr.status)) {
        if (xhr.status === 404 || xhr.status === 410) localStorage.removeItem(key);
        throw new Refused(xhr.status);
      }
      if (++failures > RETRIES) throw new Refused(xhr.status);
      view.show(texts.tRetrying, start);
      await pause(failures, job);
      state = await head(url, job);
    }
    localStorage.removeItem(key);
    if (state.error) throw new Error(state.error);
    view.finish(state.duplicate ? "duplicate" : "uploaded", state.item);
  }

  // After the Cancel button: the upload ended on the server and forgotten here.
  async function end(job) {
    job.view.show(texts.tCancelling);
    let state = null;
    try {
      if (job.url) state = await terminate(job.url);
    } catch {
      // cancelled all the same: the server removes an upload that lies idle
    }
    localStorage.removeItem(job.key);
    if (state && state.item) job.view.finish("uploaded", state.item);
    else if (state && state.error) job.view.fail(state.error);
    else job.view.cancelled();
  }

  async function drain() {
    if (busy) return;
    busy = true;
    while (queue.length) {
      const job = queue.shift();
      try {
        await send(job);
      } catch (error) {
        if (error instanceof Cancelled) await end(job);
        else job.view.fail(reason(error));
      }
    }
    busy = false;
  }

  // A file still waiting leaves the queue; the one being sent stops (its request aborted, its
  // wait before a retry cut short) and is ended by `drain`.
  function cancel(job) {
    if (job.cancelled) return;
    job.cancelled = true;
    const waiting = queue.indexOf(job);
    if (waiting >= 0) {
      queue.splice(waiting, 1);
      job.view.cancelled();
      return;
    }
    job.view.show(texts.tCancelling);
    if (job.xhr) job.xhr.abort();
    if (job.wake) job.wake();
  }

  function add(files) {
    const dock = document.getElementById("upload-dock").value.trim();
    Array.from(files).forEach((file) => {
      const key = STORE + JSON.stringify([file.name, file.size, file.lastModified]);
      const job = { file, dock, key, url: null, cancelled: false, xhr: null, wake: null };
      job.view = row(file, () => cancel(job));
      queue.push(job);
    });
    drain();
  }

  // -------------------------------------------------------------------------------- the page
  const input = document.getElementById("upload-files");
  const drop = document.getElementById("upload-drop");
  document.getElementById("upload-no-script").hidden = true;
  input.addEventListener("change", () => {
    add(input.files);
    input.value = "";
  });
  ["dragenter", "dragover"].forEach((name) =>
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    }),
  );
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer && event.dataTransfer.files.length) add(event.dataTransfer.files);
  });
})();
