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

  function uploadOne(file) {
    const item = document.createElement('li');
    const label = document.createElement('span');
    label.textContent = file.name + ' ';
    const bar = document.createElement('progress');
    bar.max = 100; bar.value = 0;
    bar.setAttribute('aria-label', 'Upload of ' + file.name);
    const status = document.createElement('span');
    status.className = 'status';
    item.append(label, bar, status);
    progress.append(item);
    return new Promise(function (resolve) {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', form.dataset.api);
      xhr.setRequestHeader('Accept', 'application/json');
      xhr.setRequestHeader('X-CSRFToken', csrfToken());
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = Math.round(100 * e.loaded / e.total); };
      xhr.onload = function () {
        let body = {};
        try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
        if (xhr.status === 202) {
          bar.value = 100;
          status.textContent = ' uploaded, processing…';
          status.dataset.imageId = body.id;
          addCard(body, status);
        } else {
          status.textContent = ' failed: ' + ((body.error && body.error.message) || ('HTTP ' + xhr.status));
          item.classList.add('error');
        }
        resolve();
      };
      xhr.onerror = function () { status.textContent = ' failed: network error'; item.classList.add('error'); resolve(); };
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
      files.reduce((p, f) => p.then(() => uploadOne(f)), Promise.resolve()).then(() => { input.value = ''; });
    });
    if (drop) {
      ['dragenter', 'dragover'].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add('over'); }));
      ['dragleave', 'drop'].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.remove('over'); }));
      drop.addEventListener('drop', function (e) {
        const files = Array.from(e.dataTransfer.files).filter((f) => f.type.startsWith('image/'));
        files.reduce((p, f) => p.then(() => uploadOne(f)), Promise.resolve());
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
