// imageshare pages: uploads with per-file progress, drag and drop, live
// status of pending images, copy-link buttons. Everything also works without
// JavaScript (the form posts, the page can be reloaded).
(function () {
  'use strict';

  function csrfToken() {
    const field = document.querySelector('input[name=csrfmiddlewaretoken]');
    return field ? field.value : '';
  }

  // --- copy links -------------------------------------------------------------
  document.addEventListener('click', function (ev) {
    const button = ev.target.closest('button.copy');
    if (!button) return;
    const text = button.dataset.copy;
    const done = () => { const old = button.textContent; button.textContent = 'Copied'; setTimeout(() => { button.textContent = old; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, () => window.prompt('Copy this link:', text));
    } else {
      window.prompt('Copy this link:', text);
    }
  });

  // --- uploads ----------------------------------------------------------------
  const form = document.getElementById('upload-form');
  const input = document.getElementById('id_image');
  const drop = document.getElementById('dropzone');
  const progress = document.getElementById('progress');

  // Direct upload: ask the web tier for a presigned S3 POST, send the file
  // straight to S3, then ask for the image (finalize). The bytes never pass
  // through the web tier. When the direct path is unavailable (no presign
  // endpoint, S3 unreachable or refusing this origin) the file goes through
  // the web tier as before (sendViaWebTier); a refusal of the file itself
  // is shown as is.
  function jsonPost(url, body) {
    return fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Accept': 'application/json', 'Content-Type': 'application/json', 'X-CSRFToken': csrfToken() },
      body: JSON.stringify(body),
    }).then(function (resp) {
      return resp.json().catch(() => ({})).then((data) => ({ status: resp.status, body: data }));
    });
  }

  const DIRECT_TYPES = ['image/jpeg', 'image/png', 'image/gif', 'image/webp', 'image/avif', 'image/tiff', 'image/bmp'];

  function sendDirect(file, bar) {
    const wanted = { size: file.size };
    if (DIRECT_TYPES.indexOf(file.type) >= 0) wanted.content_type = file.type;
    return jsonPost(form.dataset.presign, wanted).then(function (presigned) {
      if (presigned.status === 404 || presigned.status >= 500 && presigned.status !== 503) return null; // fall back
      if (presigned.status !== 201) return presigned; // refused (too large, overloaded...): say why
      const target = presigned.body;
      return new Promise(function (resolve) {
        const xhr = new XMLHttpRequest();
        xhr.open('POST', target.url);
        xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = Math.round(95 * e.loaded / e.total); };
        xhr.onload = function () { resolve(xhr.status >= 200 && xhr.status < 300); };
        xhr.onerror = function () { resolve(false); };
        const data = new FormData();
        Object.keys(target.fields).forEach((k) => data.append(k, target.fields[k]));
        if (!('Content-Type' in target.fields)) data.append('Content-Type', file.type.startsWith('image/') ? file.type : 'image/unknown');
        data.append('file', file); // S3 reads the fields before the file: it comes last
        xhr.send(data);
      }).then(function (sent) {
        if (!sent) return null; // S3 unreachable or refusing this origin: the web tier takes it
        // The file is in S3 now: a lost finalize is this file's failure (said so), not a reason to send
        // it again through the web tier, nor to stop the files after it.
        return jsonPost(target.finalize_url, { name: file.name }).catch(() => ({
          status: 0,
          body: { error: { message: 'the upload could not be finished (network error); try this file again' } },
        }));
      });
    }, () => null); // the presign request itself failed: the web tier takes it
  }

  function uploadOne(file) {
    const item = document.createElement('li');
    const label = document.createElement('span');
    label.textContent = file.name + ' ';
    const bar = document.createElement('progress');
    bar.max = 100; bar.value = 0;
    bar.setAttribute('aria-label', 'Upload of ' + file.name);
    const statusEl = document.createElement('span');
    statusEl.className = 'status';
    item.append(label, bar, statusEl);
    progress.append(item);
    function done(code, body) {
      if (code === 202 || code === 200) {
        bar.value = 100;
        statusEl.textContent = ' uploaded, processing…';
        statusEl.dataset.imageId = body.id;
        addCard(body, statusEl);
      } else {
        statusEl.textContent = ' failed: ' + ((body.error && body.error.message) || ('HTTP ' + code));
        item.classList.add('error');
      }
    }
    function broken() { done(0, { error: { message: 'network error' } }); }
    if (form.dataset.presign && window.fetch) {
      return sendDirect(file, bar).then(function (answer) {
        if (answer) { done(answer.status, answer.body); return undefined; }
        bar.value = 0;
        return sendViaWebTier(file, bar, done);
      }).catch(broken); // whatever went wrong, this file says so and the next one goes
    }
    return sendViaWebTier(file, bar, done).catch(broken);
  }

  // One file after another; a file that fails never stops the rest.
  function uploadAll(files) {
    return files.reduce((p, f) => p.then(() => uploadOne(f)).catch(() => undefined), Promise.resolve());
  }

  function sendViaWebTier(file, bar, done) {
    return new Promise(function (resolve) {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', form.dataset.api);
      xhr.setRequestHeader('Accept', 'application/json');
      xhr.setRequestHeader('X-CSRFToken', csrfToken());
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = Math.round(100 * e.loaded / e.total); };
      xhr.onload = function () {
        let body = {};
        try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
        done(xhr.status, body);
        resolve();
      };
      xhr.onerror = function () { done(0, { error: { message: 'network error' } }); resolve(); };
      const data = new FormData();
      data.append('image', file);
      xhr.send(data);
    });
  }

  function addCard(image, statusEl) {
    const recent = document.getElementById('recent');
    if (!recent) { // anonymous upload in open mode: link to the page
      const a = document.createElement('a'); a.href = image.page; a.textContent = ' open';
      statusEl.append(a);
      return;
    }
    const li = document.createElement('li');
    li.className = 'card'; li.dataset.imageId = image.id; li.dataset.status = 'pending';
    li.innerHTML = '<a><span class="placeholder" role="img" aria-label="processing"></span><span class="name"></span></a><span class="status">processing</span>';
    li.querySelector('a').href = image.page;
    li.querySelector('.name').textContent = image.name;
    recent.prepend(li);
    schedulePoll();
  }

  if (form && input && window.FormData && window.XMLHttpRequest) {
    form.addEventListener('submit', function (ev) {
      if (!input.files.length) return; // let the server say what is missing
      ev.preventDefault();
      const files = Array.from(input.files);
      uploadAll(files).then(() => { input.value = ''; });
    });
    if (drop) {
      ['dragenter', 'dragover'].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add('over'); }));
      ['dragleave', 'drop'].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.remove('over'); }));
      drop.addEventListener('drop', function (e) {
        const files = Array.from(e.dataTransfer.files).filter((f) => f.type.startsWith('image/'));
        uploadAll(files);
      });
    }
  }

  // --- live status of pending images ------------------------------------------
  let rounds = 0, timer = null;
  function schedulePoll() { if (!timer) timer = setTimeout(poll, 1000); }
  async function stillPending() {
    // One request for all pending images, instead of one per card.
    try {
      const resp = await fetch('/api/v1/images?status=pending&limit=100', { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
      if (!resp.ok) return null;
      return new Set((await resp.json()).results.map((i) => i.id));
    } catch (e) { return null; }
  }
  async function poll() {
    timer = null; rounds += 1;
    let pending = 0;
    const waiting = await stillPending(); // null (e.g. anonymous): ask each card
    for (const card of document.querySelectorAll('[data-image-id][data-status="pending"]')) {
      if (waiting && waiting.has(card.dataset.imageId)) { pending += 1; continue; }
      try {
        const resp = await fetch('/api/v1/images/' + card.dataset.imageId, { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
        if (!resp.ok) continue;
        const image = await resp.json();
        if (image.status === 'pending') { pending += 1; continue; }
        if (card.dataset.detail) { window.location.reload(); return; }
        card.dataset.status = image.status;
        const small = image.renditions.small;
        const holder = card.querySelector('.placeholder');
        if (image.status === 'ready' && small && holder) {
          const img = document.createElement('img');
          img.src = small.url; img.width = small.width; img.height = small.height;
          img.alt = image.name || 'Uploaded image';
          holder.replaceWith(img);
        }
        const text = image.status + (image.error ? ': ' + image.error.message : '');
        card.querySelector('.status').textContent = text;
        const line = document.querySelector('#progress .status[data-image-id="' + image.id + '"]');
        if (line) line.textContent = ' ' + text;
      } catch (e) { pending += 1; }
    }
    if (pending && rounds < 400) schedulePoll(); // bounded: about ten minutes
  }
  if (document.querySelector('[data-image-id][data-status="pending"]')) schedulePoll();
})();
