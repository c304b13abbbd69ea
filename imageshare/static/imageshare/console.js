// The staff console (/ops/): refreshes the pool, the workers, the queues and
// the charts every 10 s from /ops/metrics.json, without reloading the page.
// The charts are drawn here as SVG (no library, nothing inline: the CSP is
// default-src 'self'). Without JavaScript the page still shows the state as
// it was when loaded, and every control is a plain form.
(function () {
  'use strict';

  const root = document.getElementById('console');
  if (!root) return;
  const url = root.dataset.metricsUrl;
  const SVG = 'http://www.w3.org/2000/svg';
  const REFRESH_MS = 10000;
  // Chart geometry, in the viewBox (320 x 140).
  const W = 320, H = 140, LEFT = 34, RIGHT = 8, TOP = 8, BOTTOM = 18;

  function at(obj, path) {
    return path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);
  }

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text != null) node.textContent = text;
    return node;
  }

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const step = Math.pow(10, Math.floor(Math.log10(value)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= value) return m * step;
    return 10 * step;
  }

  function fmt(v) {
    if (v == null) return '–';
    if (Math.abs(v) >= 100 || Number.isInteger(v)) return String(Math.round(v));
    return v.toFixed(1);
  }

  function latest(values) {
    for (let i = values.length - 1; i >= 0; i--) if (values[i] != null) return values[i];
    return null;
  }

  // The last complete minute (the current one is still filling up).
  function lastFull(values) {
    return values.length > 1 ? values[values.length - 2] : null;
  }

  // series: [{label, values, shown}], drawn as lines with gaps where a value
  // is null; the legend shows ``shown`` (a live value) or the latest point.
  function drawChart(figure, series, unit) {
    const svg = figure.querySelector('svg');
    const n = series[0].values.length;
    const all = series.flatMap((s) => s.values).filter((v) => v != null);
    const top = niceMax(Math.max(0, ...all));
    const x = (i) => LEFT + (i * (W - LEFT - RIGHT)) / Math.max(1, n - 1);
    const y = (v) => TOP + (1 - v / top) * (H - TOP - BOTTOM);
    svg.replaceChildren();
    for (const v of [0, top / 2, top]) {
      svg.append(el('line', { x1: LEFT, x2: W - RIGHT, y1: y(v), y2: y(v), class: v ? 'grid' : 'axis' }));
      svg.append(el('text', { x: LEFT - 4, y: y(v) + 3, 'text-anchor': 'end', class: 'tick' }, fmt(v)));
    }
    [[0, '-30 min'], [Math.round((n - 1) / 2), '-15'], [n - 1, 'now']].forEach(([i, label]) => {
      svg.append(el('text', { x: x(i), y: H - 4, 'text-anchor': i === 0 ? 'start' : i === n - 1 ? 'end' : 'middle', class: 'tick' }, label));
    });
    if (!all.length) {
      svg.append(el('text', { x: (LEFT + W) / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' }, 'no data in the last 30 minutes'));
    }
    series.forEach((s, k) => {
      let run = [];
      const flush = () => {
        if (run.length === 1) svg.append(el('circle', { cx: run[0][0], cy: run[0][1], r: 2.5, class: 'dot s' + k }));
        if (run.length > 1) svg.append(el('polyline', { points: run.map((p) => p.join(',')).join(' '), class: 'line s' + k }));
        run = [];
      };
      s.values.forEach((v, i) => (v == null ? flush() : run.push([x(i).toFixed(1), y(v).toFixed(1)])));
      flush();
    });
    const legend = figure.querySelector('.legend');
    legend.replaceChildren(...series.map((s, k) => {
      const item = document.createElement('span');
      const swatch = document.createElement('span');
      swatch.className = 'swatch s' + k;
      const shown = s.shown !== undefined ? s.shown : latest(s.values);
      item.append(swatch, `${s.label} ${fmt(shown)}${unit || ''}`);
      return item;
    }));
    figure.dataset.drawn = 'true';
  }

  function drawCharts(data) {
    const c = data.charts;
    const figure = (name) => root.querySelector(`[data-chart="${name}"]`);
    const q = (path) => at(data, path);
    const both = (state) => (q('queues.work.' + state) == null ? null : q('queues.work.' + state) + (q('queues.extras.' + state) || 0));
    // Gauges: the legend says what is true now; rates: the last full minute.
    drawChart(figure('workers'), [
      { label: 'in service now', values: c.workers.running, shown: q('pool.running') },
      { label: 'starting', values: c.workers.starting, shown: q('pool.starting') },
    ]);
    drawChart(figure('queue'), [
      { label: 'waiting now', values: c.queue.visible, shown: both('visible') },
      { label: 'in flight', values: c.queue.in_flight, shown: both('in_flight') },
      { label: 'dead-letter', values: c.queue.dead_letter, shown: q('queues.dead_letter.visible') },
    ]);
    drawChart(figure('tasks'), [{ label: 'images ready, last full minute:', values: c.tasks_per_minute, shown: lastFull(c.tasks_per_minute) }]);
    drawChart(figure('uploads'), [{ label: 'uploads, last full minute:', values: c.uploads_per_minute, shown: lastFull(c.uploads_per_minute) }]);
    drawChart(figure('latency'), [
      { label: 'p50', values: c.latency_seconds.p50 },
      { label: 'p99', values: c.latency_seconds.p99 },
    ], ' s');
    document.getElementById('pool-source').textContent = c.pool_source === 'cloudwatch' ? 'CloudWatch' : 'the decision log (CloudWatch has nothing)';
    document.getElementById('charts').dataset.ready = 'true';
  }

  function cell(row, text, header) {
    const c = document.createElement(header ? 'th' : 'td');
    if (header) c.scope = 'row';
    if (text instanceof Node) c.append(text); else c.textContent = text;
    row.append(c);
  }

  function drawWorkers(data) {
    const body = document.getElementById('workers-body');
    const rows = data.workers.map((w) => {
      const tr = document.createElement('tr');
      const state = document.createElement('span');
      state.className = 'state state-' + w.state.replace(/\s+/g, '-');
      state.textContent = w.state;
      cell(tr, w.id, true);
      cell(tr, state);
      cell(tr, w.host + (w.pid ? ` (pid ${w.pid})` : ''));
      cell(tr, w.uptime);
      cell(tr, w.tasks_done == null ? 'not measured' : String(w.tasks_done));
      cell(tr, w.current_task || '—');
      return tr;
    });
    if (!rows.length) {
      const tr = document.createElement('tr');
      const td = document.createElement('td');
      td.colSpan = 6;
      td.textContent = data.pool.error ? 'The pool cannot be read: ' + data.pool.error : 'No workers.';
      tr.append(td);
      rows.push(tr);
    }
    body.replaceChildren(...rows);
  }

  function drawDecisions(lines) {
    const body = document.getElementById('decisions-body');
    if (!lines.length) return;  // keep the page's "no decisions yet" hint
    body.replaceChildren(...lines.map((d) => {
      const tr = document.createElement('tr');
      if (d.change) tr.className = 'change';
      const action = document.createElement('span');
      action.textContent = d.label;
      if (d.count > 1) {
        const count = document.createElement('span');
        count.className = 'count';
        count.textContent = ' ×' + d.count;
        action.append(count);
      }
      [d.time, action, d.pool, d.queue, d.reason].forEach((v) => cell(tr, v));
      return tr;
    }));
  }

  // "Running: <strong>N</strong> · starting: N · …" (bench/load.py reads this line's shape).
  function drawPoolLine(pool) {
    const line = document.getElementById('pool-line');
    if (pool.error) { line.textContent = ''; return; }
    const strong = document.createElement('strong');
    strong.textContent = String(pool.running);
    const bounds = pool.bounds ? ` (its bounds ${pool.bounds[0]}..${pool.bounds[1]})` : '';
    line.replaceChildren('Running: ', strong,
      ` · starting: ${pool.starting} · stopping (finishing their tasks): ${pool.stopping} · provider: ${pool.provider}${bounds}`);
  }

  function drawMode(mode) {
    const tile = document.getElementById('mode');
    tile.classList.toggle('manual', mode.manual);
    tile.classList.toggle('auto', !mode.manual);
    document.getElementById('mode-word').textContent = mode.manual ? 'Manual' : 'Automatic';
    document.getElementById('mode-text').textContent = mode.manual
      ? `held at ${mode.desired} worker(s)${mode.by ? ' by ' + mode.by : ''}: the policy does not act`
      : `${mode.policy} policy, ${mode.min}..${mode.max} workers${mode.enabled ? '' : ' (disabled: observes only)'}`;
  }

  function render(data) {
    root.querySelectorAll('[data-live]').forEach((node) => {
      const v = at(data, node.dataset.live);
      node.textContent = v == null ? '?' : String(v);
    });
    document.getElementById('dlq-tile').classList.toggle('alarm', !!at(data, 'queues.dead_letter.visible'));
    drawMode(data.mode);
    drawPoolLine(data.pool);
    drawWorkers(data);
    drawDecisions(data.decisions);
    drawCharts(data);
  }

  const stamp = document.getElementById('updated');
  async function refresh() {
    try {
      const resp = await fetch(url, { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
      if (!resp.ok) throw new Error('HTTP ' + resp.status);
      render(await resp.json());
      stamp.textContent = 'live, updated ' + new Date().toLocaleTimeString();
      stamp.classList.remove('stale');
    } catch (err) {
      stamp.textContent = 'live refresh failed (' + err.message + '); retrying';
      stamp.classList.add('stale');
    }
  }

  refresh();
  setInterval(refresh, REFRESH_MS);
})();
