/// The scheduler's dashboard (served at `/`): one self-contained page, with
/// no build step and nothing from outside, that fetches `api/snapshot` every
/// two seconds and shows the farm as `kiln top` does. Every number on it is
/// also in an element whose `data-k` attribute names it and whose text is the
/// raw JSON value, so a test can compare the page with the snapshot;
/// `<body data-loaded>` counts the snapshots shown so far.
package enum DashboardPage {
    package static let html: String = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Kiln farm</title>
    <style>
    :root { --bg: #f4f5f7; --card: #fff; --ink: #1c2230; --mute: #6b7280; --line: #e2e5ea;
      --ok: #1f9d55; --bad: #d64545; --warn: #b7791f; --acc: #2f6fde; }
    * { box-sizing: border-box; }
    body { margin: 0; background: var(--bg); color: var(--ink);
      font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif; }
    header { display: flex; align-items: baseline; gap: 24px; padding: 14px 24px; background: var(--card);
      border-bottom: 1px solid var(--line); flex-wrap: wrap; }
    h1 { font-size: 20px; margin: 0; letter-spacing: -.01em; }
    .meta { display: flex; gap: 18px; flex-wrap: wrap; color: var(--mute); }
    .meta b { color: var(--ink); font-weight: 600; }
    #banner { margin: 12px 24px 0; padding: 10px 14px; border-radius: 6px; background: #fdecec;
      border: 1px solid #f3b4b4; color: #8f1f1f; font-weight: 600; }
    body.down main { opacity: .55; }
    main { display: grid; grid-template-columns: repeat(12, minmax(0, 1fr)); gap: 16px; padding: 16px 24px 32px;
      max-width: 1600px; margin: 0 auto; }
    section { grid-column: span 12; background: var(--card); border: 1px solid var(--line); border-radius: 8px;
      padding: 14px 16px; min-width: 0; }
    section.narrow { grid-column: span 5; } section.wide { grid-column: span 7; }
    @media (max-width: 1100px) { section.narrow, section.wide { grid-column: span 12; } }
    h2 { font-size: 12px; text-transform: uppercase; letter-spacing: .06em; color: var(--mute); margin: 0 0 10px; }
    h2 .count { margin-left: 6px; padding: 0 7px; border-radius: 9px; background: #eef0f3; color: var(--ink); }
    h2 .count:empty { display: none; }
    h3 { font-size: 14px; margin: 0 0 8px; }
    table { width: 100%; border-collapse: collapse; }
    th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
    th { font-size: 12px; font-weight: 600; color: var(--mute); white-space: nowrap; }
    tr:last-child td { border-bottom: 0; }
    .n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
    .id { white-space: nowrap; } div.id { font-weight: 600; }
    section > div { overflow-x: auto; }
    code, pre { font: 12px/1.45 ui-monospace, "DejaVu Sans Mono", monospace; }
    pre { margin: 6px 0 0; padding: 8px 10px; background: #f6f7f9; border-radius: 4px; white-space: pre-wrap;
      word-break: break-word; max-height: 260px; overflow: auto; }
    .mute { color: var(--mute); } .small { font-size: 12px; } .ok { color: var(--ok); } .bad { color: var(--bad); }
    .empty { color: var(--mute); padding: 6px 0; }
    .tag { display: inline-block; margin: 0 4px 2px 0; padding: 0 6px; border-radius: 4px; background: #eef0f3;
      font-size: 12px; white-space: nowrap; }
    .tag.emu { background: #f1ecfb; color: #5b3fa6; }
    .tag.warn { background: #fff1d6; color: #8a5a00; font-weight: 600; }
    .pill { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 12px; font-weight: 600;
      background: #e6f4ec; color: var(--ok); }
    .pill.off, .pill.failed { background: #fdecec; color: var(--bad); }
    .pill.queued, .pill.waiting { background: #eef0f3; color: var(--mute); }
    tr.short td { background: #fff8e8; }
    .bar { display: inline-block; width: 110px; height: 8px; margin-right: 8px; border-radius: 4px;
      background: #e6e9ee; overflow: hidden; vertical-align: middle; }
    .bar > i { display: block; height: 100%; background: var(--acc); }
    .windows { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 24px; }
    .win + .win { border-left: 1px solid var(--line); padding-left: 24px; }
    .tiles { display: flex; flex-wrap: wrap; gap: 8px 18px; margin-bottom: 10px; }
    .tile .v { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
    .tile .l { font-size: 12px; color: var(--mute); white-space: nowrap; }
    dl { display: grid; grid-template-columns: auto 1fr; gap: 2px 12px; margin: 0 0 8px; }
    dt { color: var(--mute); } dd { margin: 0; font-variant-numeric: tabular-nums; }
    .win table td, .win table th { padding: 3px 6px; }
    .charts { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 24px; }
    @media (max-width: 1100px) { .windows, .charts { grid-template-columns: 1fr; } .win + .win { border: 0; padding: 0; } }
    figure { margin: 0; } figcaption b { display: block; }
    .key { font-size: 12px; color: var(--mute); margin-right: 12px; white-space: nowrap; }
    .key i { display: inline-block; width: 9px; height: 9px; border-radius: 2px; margin-right: 4px; }
    svg { display: block; width: 100%; height: auto; margin-top: 6px; }
    svg text { font-size: 10px; fill: var(--mute); }
    svg .hit:hover { fill: rgba(47, 111, 222, .08); }
    summary { cursor: pointer; }
    a { color: var(--acc); }
    </style>
    </head>
    <body data-loaded="0">
    <header><h1>Kiln farm</h1><div class="meta" id="meta">connecting…</div></header>
    <div id="banner" role="alert" hidden></div>
    <main>
      <section><h2>Throughput</h2><div id="windows" class="windows"></div></section>
      <section class="narrow"><h2>Queues</h2><div id="queues"></div></section>
      <section class="wide"><h2>Agents<span class="count" id="n-agents"></span></h2><div id="agents"></div></section>
      <section><h2>Running builds<span class="count" id="n-running"></span></h2><div id="running"></div></section>
      <section><h2>Last 60 minutes</h2><div id="charts" class="charts"></div></section>
      <section><h2>Recent failures<span class="count" id="n-failures"></span></h2><div id="failures"></div></section>
    </main>
    <script>
    "use strict";
    // Everything from the snapshot goes in through text nodes and attributes, never as markup.
    const $ = id => document.getElementById(id);
    const COLORS = { ok: "#1f9d55", bad: "#d64545", acc: "#2f6fde", mb: "#7c5cc4", hit: "#159a8c", miss: "#e0a030" };
    const openFailures = new Set();
    let loaded = 0, lastOk = null, downSince = null;

    function h(tag, attrs, ...kids) {
      const e = document.createElement(tag);
      for (const [k, v] of Object.entries(attrs || {})) {
        if (v == null || v === false) continue;
        if (k === "class") e.className = v; else e.setAttribute(k, v === true ? "" : v);
      }
      for (const c of kids.flat(2)) if (c != null && c !== false) e.append(c instanceof Node ? c : String(c));
      return e;
    }
    function s(tag, attrs, ...kids) {
      const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
      e.append(...kids);
      return e;
    }
    // The raw JSON value for tests: hidden next to its formatted form, or shown as is.
    const raw = (k, v) => h("span", { "data-k": k, hidden: true }, String(v));
    const shown = (k, v) => h("span", { "data-k": k }, String(v));
    const td = (...kids) => h("td", null, ...kids);
    const tdn = (...kids) => h("td", { class: "n" }, ...kids);
    const empty = text => h("div", { class: "empty" }, text);
    function table(heads, rows) {
      const ths = heads.map(x => x.startsWith("#") ? h("th", { class: "n" }, x.slice(1)) : h("th", null, x));
      return h("table", null, h("thead", null, h("tr", null, ths)), h("tbody", null, rows));
    }

    const pad = n => String(n).padStart(2, "0");
    const clock = ms => { const d = new Date(ms); return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`; };
    function when(ms) {
      const d = new Date(ms), today = new Date().toDateString() === d.toDateString();
      return today ? clock(ms) : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(ms).slice(0, 5)}`;
    }
    function dur(sec) {
      if (!(sec >= 0)) return "–";
      if (sec < 10) return sec.toFixed(1) + "s";
      if (sec < 60) return Math.round(sec) + "s";
      const m = Math.floor(sec / 60), hr = Math.floor(m / 60);
      if (m < 60) return `${m}m ${pad(Math.floor(sec % 60))}s`;
      return hr < 48 ? `${hr}h ${pad(m % 60)}m` : `${Math.floor(hr / 24)}d ${hr % 24}h`;
    }
    function bytes(n) {
      const units = ["B", "kB", "MB", "GB", "TB", "PB"];
      let i = 0;
      while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
      return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + " " + units[i];
    }
    const num = x => x === 0 ? "0" : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
    function nice(max) {
      if (!(max > 0)) return 1;
      const p = 10 ** Math.floor(Math.log10(max));
      return [1, 2, 5, 10].map(k => k * p).find(v => v >= max * 0.999);
    }

    function renderHeader(d) {
      const sc = d.scheduler, item = (label, ...v) => h("span", null, label + " ", h("b", null, v));
      $("meta").replaceChildren(
        item("scheduler", shown("scheduler.version", sc.version)),
        item("epoch", shown("scheduler.epoch", sc.epoch)),
        item("up", dur((d.generated_unix_ms - sc.started_unix_ms) / 1000), raw("scheduler.started_unix_ms", sc.started_unix_ms)),
        item("assemblies", shown("scheduler.assemblies_running", sc.assemblies_running), " running, ",
             shown("scheduler.assemblies_queued", sc.assemblies_queued), " queued"),
        h("span", { class: sc.dropped_messages ? "bad" : null }, "dropped messages ",
          h("b", null, shown("scheduler.dropped_messages", sc.dropped_messages))),
        item("updated", clock(Date.now()), raw("generated_unix_ms", d.generated_unix_ms)));
    }

    const WINDOW_NAMES = { 1: "Last minute", 15: "Last 15 minutes", 60: "Last hour" };
    function renderWindows(ws) {
      $("windows").replaceChildren(...ws.map(w => {
        const k = f => `window.${w.minutes}.${f}`, rate = w.cache_hit_rate;
        const tile = (label, ...v) => h("div", { class: "tile" }, h("div", { class: "v" }, v), h("div", { class: "l" }, label));
        const types = (w.image_types || []).map(t => h("tr", null, td(t.image_type),
          tdn(shown(k(`image_type.${t.image_type}.builds`), t.builds)),
          tdn(dur(t.median_s), raw(k(`image_type.${t.image_type}.median_s`), t.median_s)),
          tdn(dur(t.p95_s), raw(k(`image_type.${t.image_type}.p95_s`), t.p95_s))));
        return h("div", { class: "win" }, h("h3", null, WINDOW_NAMES[w.minutes] || `Last ${w.minutes} minutes`),
          h("div", { class: "tiles" },
            tile("builds / h", num(w.builds_per_hour), raw(k("builds_per_hour"), w.builds_per_hour)),
            tile("jobs / min", num(w.jobs_per_minute), raw(k("jobs_per_minute"), w.jobs_per_minute)),
            tile("MB/s streamed", num(w.streamed_mb_per_s), raw(k("streamed_mb_per_s"), w.streamed_mb_per_s)),
            tile("cache hit rate", rate == null ? "–" : Math.round(rate * 100) + "%",
                 rate == null ? null : raw(k("cache_hit_rate"), rate))),
          h("dl", null,
            h("dt", null, "Builds"), h("dd", null, shown(k("builds_finished"), w.builds_finished), " finished: ",
              h("span", { class: w.builds_succeeded ? "ok" : null }, shown(k("builds_succeeded"), w.builds_succeeded), " succeeded"), ", ",
              h("span", { class: w.builds_failed ? "bad" : null }, shown(k("builds_failed"), w.builds_failed), " failed")),
            h("dt", null, "Jobs"), h("dd", null, shown(k("jobs_finished"), w.jobs_finished), " finished, ",
              bytes(w.streamed_bytes), raw(k("streamed_bytes"), w.streamed_bytes), " streamed"),
            h("dt", null, "Tree cache"), h("dd", null, shown(k("tree_cache_hits"), w.tree_cache_hits), w.tree_cache_hits === 1 ? " hit, " : " hits, ",
              shown(k("tree_cache_misses"), w.tree_cache_misses), w.tree_cache_misses === 1 ? " miss" : " misses")),
          types.length ? table(["Image type", "#Builds", "#Median", "#p95"], types) : empty("No succeeded builds."));
      }));
    }

    function renderQueues(qs) {
      if (!qs.length) return $("queues").replaceChildren(empty("No architecture known yet."));
      $("queues").replaceChildren(table(["Arch", "#Queued", "#Oldest", "#Agents", "#Slots busy"], qs.map(q => {
        const k = f => `queue.${q.arch}.${f}`, short = q.depth > 0 && q.agents_online === 0;
        const full = q.depth > 0 && !short && q.slots_busy >= q.slots_total;
        return h("tr", { class: short ? "short" : null },
          td(h("div", { class: "id" }, q.arch), short ? h("span", { class: "tag warn" }, `no agent runs ${q.arch}`) : null,
             full ? h("span", { class: "tag warn" }, "all slots busy") : null),
          tdn(shown(k("depth"), q.depth)),
          tdn(q.depth ? dur(q.oldest_age_s) : "–", raw(k("oldest_age_s"), q.oldest_age_s)),
          tdn(shown(k("agents_online"), q.agents_online)),
          tdn(shown(k("slots_busy"), q.slots_busy), " / ", shown(k("slots_total"), q.slots_total)));
      })));
    }

    function renderAgents(as) {
      $("n-agents").replaceChildren(shown("count.agents", as.length));
      if (!as.length) return $("agents").replaceChildren(empty("No agent has registered."));
      $("agents").replaceChildren(table(["Agent", "Architectures", "State", "#Slots", "Current jobs", "#Heartbeat", "#Free disk"],
        as.map(a => {
          const k = f => `agent.${a.id}.${f}`;
          const jobs = a.jobs.map(j => h("div", null, h("b", null, j.pipeline),
            j.stage_count ? ` stage ${j.stage_index + 1}/${j.stage_count} ` : ` ${j.state} `, h("code", null, j.stage_type),
            h("div", { class: "mute small" }, j.build_id, " ", j.emulated ? h("span", { class: "tag emu" }, "emulated") : null)));
          return h("tr", null,
            td(h("div", { class: "id" }, a.id), h("div", { class: "mute small" }, a.version)),
            td(a.arches.map(x => h("span", { class: "tag" }, x)),
               (a.emulated_arches || []).map(x => h("span", { class: "tag emu" }, x + " (emulated)"))),
            td(h("span", { class: "pill " + (a.state === "online" ? "on" : "off") }, shown(k("state"), a.state))),
            tdn(shown(k("slots_in_use"), a.slots_in_use), " / ", shown(k("slots"), a.slots)),
            td(jobs.length ? jobs : h("span", { class: "mute" }, "idle"), raw(k("jobs"), a.jobs.length)),
            tdn(dur(a.heartbeat_age_s), " ago", raw(k("heartbeat_age_s"), a.heartbeat_age_s)),
            tdn(bytes(a.free_disk_bytes), raw(k("free_disk_bytes"), a.free_disk_bytes)));
        })));
    }

    function renderRunning(bs) {
      $("n-running").replaceChildren(shown("count.running", bs.length));
      if (!bs.length) return $("running").replaceChildren(empty("Nothing is building."));
      $("running").replaceChildren(table(["Build", "Label", "State", "#Age", "Progress", "#Jobs", "Now"], bs.map(b => {
        const k = f => `running.${b.build_id}.${f}`, pct = Math.round(Math.min(1, Math.max(0, b.progress)) * 100);
        return h("tr", null, td(h("code", { class: "id" }, b.build_id)), td(b.label),
          td(h("span", { class: "pill " + b.state }, shown(k("state"), b.state))),
          tdn(dur(b.age_s), raw(k("age_s"), b.age_s)),
          td(h("span", { class: "bar" }, h("i", { style: `width:${pct}%` })), pct + "%",
             raw(k("progress"), b.progress)),
          tdn(shown(k("jobs_done"), b.jobs_done), " / ", shown(k("jobs_total"), b.jobs_total)),
          td(h("span", { class: "small" }, b.current)));
      })));
    }

    function chart(title, layers, times, fmt, unit) {
      const W = 320, H = 130, T = 16, B = 18, n = Math.max(1, times.length), ph = H - T - B, bw = W / n;
      const totals = times.map((_, i) => layers.reduce((sum, l) => sum + l.values[i], 0));
      const max = nice(Math.max(0, ...totals)), base = T + ph;
      const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${title}, last 60 minutes` },
        s("line", { x1: 0, x2: W, y1: T, y2: T, stroke: "#e2e5ea", "stroke-dasharray": "3 3" }),
        s("line", { x1: 0, x2: W, y1: base, y2: base, stroke: "#c5cad3" }),
        s("text", { x: 0, y: T - 4 }, `max ${fmt(max)}${unit}`),
        s("text", { x: 0, y: H - 4 }, "−60 min"), s("text", { x: W / 2, y: H - 4, "text-anchor": "middle" }, "−30 min"),
        s("text", { x: W, y: H - 4, "text-anchor": "end" }, "now"));
      times.forEach((t, i) => {
        const tip = `${clock(t)}: ` + layers.map(l => `${l.name} ${fmt(l.values[i])}${unit}`).join(", ");
        const g = s("g", {}, s("title", {}, tip), s("rect", { class: "hit", x: i * bw, y: T, width: bw, height: ph, fill: "transparent" }));
        let y = base;
        for (const l of layers) {
          const bh = l.values[i] / max * ph;
          if (bh <= 0) continue;
          y -= bh;
          g.append(s("rect", { x: i * bw + 0.5, y, width: Math.max(1, bw - 1), height: bh, fill: l.color, "pointer-events": "none" }));
        }
        svg.append(g);
      });
      const keys = layers.map(l => h("span", { class: "key" }, h("i", { style: `background:${l.color}` }),
        `${l.name} ${fmt(l.values.reduce((a, b) => a + b, 0))}${unit}`));
      return h("figure", null, h("figcaption", null, h("b", null, title), h("span", null, keys)), svg);
    }

    function renderCharts(series) {
      const col = f => series.map(f), times = col(m => m.start_unix_ms), count = String;
      $("charts").replaceChildren(
        chart("Builds per minute", [{ name: "succeeded", color: COLORS.ok, values: col(m => m.builds_succeeded) },
          { name: "failed", color: COLORS.bad, values: col(m => m.builds_failed) }], times, count, ""),
        chart("Jobs per minute", [{ name: "finished", color: COLORS.acc, values: col(m => m.jobs_finished) }], times, count, ""),
        chart("Streamed per minute", [{ name: "streamed", color: COLORS.mb, values: col(m => m.streamed_bytes / 1e6) }],
          times, v => String(+num(v)), " MB"),
        chart("Tree cache per minute", [{ name: "hits", color: COLORS.hit, values: col(m => m.tree_cache_hits) },
          { name: "misses", color: COLORS.miss, values: col(m => m.tree_cache_misses) }], times, count, ""));
    }

    function renderFailures(fs, now) {
      $("n-failures").replaceChildren(shown("count.failures", fs.length));
      if (!fs.length) return $("failures").replaceChildren(empty("No failed builds."));
      $("failures").replaceChildren(table(["Build", "Label", "Finished", "Failure", ""], fs.map(f => {
        const id = f.build_id, text = String(f.failure || "");
        const details = h("details", { open: openFailures.has(id) }, h("summary", null, text.split("\n")[0] || "(no message)"),
          h("pre", null, text));
        details.addEventListener("toggle", () => details.open ? openFailures.add(id) : openFailures.delete(id));
        return h("tr", { "data-k": `failure.${id}` }, td(h("code", { class: "id" }, id)),
          td(f.label, h("div", { class: "mute small" }, `${f.arch} · ${f.image_type}`)),
          td(when(f.finished_unix_ms), h("div", { class: "mute small" }, dur((now - f.finished_unix_ms) / 1000) + " ago"),
             raw(`failure.${id}.finished_unix_ms`, f.finished_unix_ms)),
          td(details),
          td(h("a", { "data-k": `log.${id}`, href: "api/log?build=" + encodeURIComponent(id) }, "log")));
      })));
    }

    function banner(text) {
      $("banner").textContent = text || "";
      $("banner").hidden = !text;
      document.body.classList.toggle("down", !!text);
    }

    async function refresh() {
      let d;
      try {
        const r = await fetch("api/snapshot", { cache: "no-store" });
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        d = await r.json();
      } catch (e) {
        downSince = downSince || Date.now();
        banner(`Scheduler unreachable since ${clock(downSince)} (${e.message})` +
          (lastOk ? `; showing the snapshot from ${clock(lastOk)}.` : "."));
        return;
      }
      try {
        lastOk = Date.now(); downSince = null;
        renderHeader(d); renderWindows(d.windows || []); renderQueues(d.queues || []); renderAgents(d.agents || []);
        renderRunning(d.running || []); renderCharts(d.series || []); renderFailures(d.failures || [], d.generated_unix_ms);
        banner(null);
        document.body.dataset.loaded = String(++loaded);
      } catch (e) {
        banner(`Could not show the snapshot: ${e.message}`);
      }
    }
    (async function poll() { await refresh(); setTimeout(poll, 2000); })();
    </script>
    </body>
    </html>
    """#
}
