import Detection
import Foundation

/// The triage page: one HTML file with its style, script and data inline. It loads nothing
/// from the network (the Content-Security-Policy forbids it) and works from file://.
///
/// Safety: the data is JSON inside a non-executed `<script type="application/json">` with
/// `<`, `>` and `&` written as `\u003c`-style escapes, so no file name can close the element;
/// the script puts every name and path into the page with `textContent`, never as markup.
/// Filters live in the URL fragment (`#verdict=anomalous&group=crack&min=0.5&max=3&q=name&mark=none&shift=shifted`),
/// so a filtered view can be bookmarked or opened from a script; `#open=N` opens the N-th card.
enum ReportPage {
    /// The page with `json` (a `ReportData`) embedded.
    static func html(embedding json: Data) -> String {
        var data = ""
        data.reserveCapacity(json.count + json.count / 8)
        for scalar in String(decoding: json, as: UTF8.self).unicodeScalars {
            switch scalar {
            case "<": data += "\\u003c"
            case ">": data += "\\u003e"
            case "&": data += "\\u0026"
            case "\u{2028}": data += "\\u2028"
            case "\u{2029}": data += "\\u2029"
            default: data.unicodeScalars.append(scalar)
            }
        }
        return template.replacingOccurrences(of: "@@DATA@@", with: data)
    }

    static let template = #"""
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self' file: blob: data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
        <title>anomap report</title>
        <style>
        :root { --bg:#111418; --panel:#1b2027; --fg:#e6e9ee; --dim:#9aa3ad; --bad:#ff6b57; --ok:#5cc98a; --err:#c9a75c; --accent:#6aa8ff; }
        * { box-sizing: border-box; }
        body { margin:0; font:14px/1.4 system-ui, sans-serif; background:var(--bg); color:var(--fg); }
        header { padding:12px 16px; background:var(--panel); position:sticky; top:0; z-index:2; box-shadow:0 2px 6px #0008; }
        h1 { font-size:18px; margin:0 0 6px; }
        #summary { color:var(--dim); }
        #controls { display:flex; flex-wrap:wrap; gap:8px 14px; align-items:center; margin-top:8px; }
        #controls label { color:var(--dim); }
        input, select, button { background:#0d1014; color:var(--fg); border:1px solid #39424d; border-radius:4px; padding:3px 6px; font:inherit; }
        input[type=number] { width:6em; }
        button { cursor:pointer; }
        main { padding:12px 16px; }
        #charts { display:flex; flex-wrap:wrap; gap:16px; align-items:flex-start; margin-bottom:12px; }
        #histogram { background:var(--panel); border-radius:6px; }
        #metrics table { border-collapse:collapse; background:var(--panel); }
        #metrics td, #metrics th { padding:3px 10px; text-align:right; border-bottom:1px solid #2a313a; }
        #metrics td:first-child, #metrics th:first-child { text-align:left; }
        #plots img { background:#fff; border-radius:6px; width:320px; }
        #gallery { display:grid; grid-template-columns:repeat(auto-fill, minmax(200px, 1fr)); gap:10px; }
        .card { background:var(--panel); border-radius:6px; padding:6px; cursor:pointer; outline:2px solid transparent; position:relative; }
        .card[hidden] { display:none; }
        .card.selected { outline-color:var(--accent); }
        .card img { width:100%; height:150px; object-fit:contain; background:#000; display:block; border-radius:4px; }
        .card .name { font-weight:600; overflow-wrap:anywhere; margin-top:4px; }
        .card .meta { color:var(--dim); font-size:12px; }
        .verdict-anomalous .v { color:var(--bad); } .verdict-normal .v { color:var(--ok); } .verdict-error .v { color:var(--err); }
        .mark { position:absolute; top:10px; right:10px; padding:1px 6px; border-radius:10px; font-size:12px; font-weight:600; }
        .mark.defect { background:var(--bad); color:#000; } .mark.false-alarm { background:var(--ok); color:#000; }
        #detail { position:fixed; inset:0; background:#000; z-index:5; display:flex; flex-direction:column; }
        #detail[hidden] { display:none; }
        #detail .bar { padding:8px 16px; background:var(--panel); display:flex; flex-wrap:wrap; gap:6px 16px; align-items:center; }
        #detail .title { font-weight:600; overflow-wrap:anywhere; }
        #panels { flex:1; display:flex; gap:8px; padding:8px; overflow:hidden; }
        .panel { flex:1; min-width:0; display:flex; flex-direction:column; }
        .panel .label { color:var(--dim); margin-bottom:4px; }
        .panel .view { flex:1; overflow:auto; background:#000; border-radius:4px; }
        .panel img { display:block; image-rendering:pixelated; }
        .fit .panel .view { overflow:hidden; }
        .fit .panel img { width:100%; height:100%; object-fit:contain; image-rendering:auto; }
        #help { color:var(--dim); font-size:12px; }
        kbd { border:1px solid #555; border-radius:3px; padding:0 4px; font-size:12px; }
        </style>
        </head>
        <body>
        <header>
          <h1 id="title">anomap report</h1>
          <div id="summary"></div>
          <div id="controls">
            <label>verdict <select id="f-verdict"><option value="">all</option><option>anomalous</option><option>normal</option><option>error</option></select></label>
            <label id="group-label">type <select id="f-group"><option value="">all</option></select></label>
            <label>score from <input id="f-min" type="number" step="0.1"> to <input id="f-max" type="number" step="0.1"></label>
            <label>name <input id="f-q" type="search" placeholder="search file names"></label>
            <label>mark <select id="f-mark"><option value="">any</option><option value="none">unmarked</option><option value="defect">defect</option><option value="false alarm">false alarm</option></select></label>
            <label>shift <select id="f-shift"><option value="">any</option><option value="shifted">shifted</option><option value="unshifted">not shifted</option></select></label>
            <button id="export-csv">export marks CSV</button>
            <button id="export-json">export marks JSON</button>
            <span id="shown"></span>
          </div>
          <div id="help">keys: <kbd>→</kbd>/<kbd>j</kbd> next, <kbd>←</kbd>/<kbd>k</kbd> previous, <kbd>Enter</kbd> open, <kbd>Esc</kbd> close, <kbd>d</kbd> defect, <kbd>f</kbd> false alarm, <kbd>u</kbd> clear mark, <kbd>+</kbd>/<kbd>-</kbd> zoom</div>
        </header>
        <main>
          <div id="charts"><svg id="histogram" width="480" height="180" role="img" aria-label="score histogram"></svg><div id="metrics"></div><div id="plots"></div></div>
          <div id="gallery"></div>
        </main>
        <div id="detail" hidden>
          <div class="bar">
            <span class="title" id="d-title"></span><span id="d-meta"></span>
            <span>zoom <button data-zoom="0">fit</button><button data-zoom="1">1:1</button><button data-zoom="2">2x</button><button data-zoom="4">4x</button></span>
            <button id="d-defect">defect (d)</button><button id="d-false">false alarm (f)</button><button id="d-close">close (Esc)</button>
          </div>
          <div id="d-path" style="padding:0 16px;color:var(--dim);overflow-wrap:anywhere"></div>
          <div id="panels" class="fit"></div>
        </div>
        <script type="application/json" id="report-data">@@DATA@@</script>
        <script>
        "use strict";
        const data = JSON.parse(document.getElementById("report-data").textContent);
        const items = data.items;
        for (const it of items) for (const k of ["score", "raw_score", "defect_area", "error", "shift_score", "shifted"]) if (it[k] === undefined) it[k] = null;
        const $ = (id) => document.getElementById(id);
        const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; };
        const fmt = (v, d = 3) => v === null || v === undefined ? "–" : Number(v).toFixed(d);
        const storeKey = "anomap-marks:" + data.title + ":" + data.generated;
        let marks = {};
        try { marks = JSON.parse(localStorage.getItem(storeKey) || "{}") || {}; } catch (e) { marks = {}; }
        const saveMarks = () => { try { localStorage.setItem(storeKey, JSON.stringify(marks)); } catch (e) {} };

        $("title").textContent = data.title;
        document.title = data.title;
        const counts = { anomalous: 0, normal: 0, error: 0 };
        for (const it of items) counts[it.verdict] = (counts[it.verdict] || 0) + 1;
        $("summary").textContent = `${items.length} images: ${counts.anomalous} anomalous, ${counts.normal} normal, ${counts.error} errors · threshold ${fmt(data.threshold)} (normalized score) · ${data.generated}`;
        $("group-label").firstChild.textContent = data.kind === "eval" ? "type " : "folder ";
        for (const g of [...new Set(items.map((it) => it.group))].sort()) { const o = el("option", "", g); o.value = g; $("f-group").appendChild(o); }

        // Gallery: one card per item, in the data's order (most suspicious first).
        const cards = items.map((it, i) => {
          const card = el("article", "card verdict-" + it.verdict);
          card.dataset.index = i;
          card.dataset.score = it.score === null || it.score === undefined ? "" : String(it.score);
          card.dataset.verdict = it.verdict;
          card.tabIndex = 0;
          if (it.images.thumb) { const img = el("img"); img.loading = "lazy"; img.alt = ""; img.src = it.images.thumb; card.appendChild(img); }
          card.appendChild(el("div", "name", it.name));
          const meta = el("div", "meta");
          meta.appendChild(el("span", "v", it.verdict));
          meta.appendChild(document.createTextNode(it.error ? " · " + it.error : ` · score ${fmt(it.score)} · area ${fmt(100 * (it.defect_area || 0), 2)}% · ${it.group}` + (it.shifted ? " · shifted" : "")));
          card.appendChild(meta);
          card.appendChild(el("span", "mark"));
          card.addEventListener("click", () => { select(i); openDetail(); });
          $("gallery").appendChild(card);
          return card;
        });
        const drawMark = (i) => {
          const m = marks[items[i].path], badge = cards[i].querySelector(".mark");
          badge.textContent = m || "";
          badge.className = "mark" + (m ? " " + m.replace(" ", "-") : "");
        };
        items.forEach((_, i) => drawMark(i));

        // Filters, kept in the URL fragment.
        const fields = { verdict: "f-verdict", group: "f-group", min: "f-min", max: "f-max", q: "f-q", mark: "f-mark", shift: "f-shift" };
        function readHash() {
          const p = new URLSearchParams(location.hash.slice(1));
          for (const [k, id] of Object.entries(fields)) $(id).value = p.get(k) || "";
        }
        function writeHash() {
          const p = new URLSearchParams();
          for (const [k, id] of Object.entries(fields)) if ($(id).value) p.set(k, $(id).value);
          history.replaceState(null, "", "#" + p.toString());
        }
        function matches(it) {
          const v = $("f-verdict").value, g = $("f-group").value, q = $("f-q").value.trim().toLowerCase(), m = $("f-mark").value;
          const lo = parseFloat($("f-min").value), hi = parseFloat($("f-max").value);
          if (v && it.verdict !== v) return false;
          if (g && it.group !== g) return false;
          if (q && !it.name.toLowerCase().includes(q) && !it.path.toLowerCase().includes(q)) return false;
          if (!isNaN(lo) && !(it.score !== null && it.score >= lo)) return false;
          if (!isNaN(hi) && !(it.score !== null && it.score <= hi)) return false;
          const mark = marks[it.path];
          if (m === "none" ? !!mark : (m && mark !== m)) return false;
          const sh = $("f-shift").value;
          if (sh && (sh === "shifted") !== (it.shifted === true)) return false;
          return true;
        }
        function applyFilters() {
          let shown = 0;
          items.forEach((it, i) => { const ok = matches(it); cards[i].hidden = !ok; if (ok) shown++; });
          $("shown").textContent = `showing ${shown} of ${items.length}`;
          document.body.dataset.shown = shown;
        }
        for (const id of Object.values(fields)) $(id).addEventListener("input", () => { writeHash(); applyFilters(); });
        window.addEventListener("hashchange", () => { readHash(); applyFilters(); });
        readHash();
        applyFilters();

        // Score histogram with the threshold line.
        (function histogram() {
          const svg = $("histogram"), ns = "http://www.w3.org/2000/svg", W = 480, H = 180, m = 28;
          const scored = items.filter((it) => it.score !== null && it.score !== undefined);
          const add = (tag, attrs, text) => { const e = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); if (text !== undefined) e.textContent = text; svg.appendChild(e); return e; };
          add("text", { x: 8, y: 16, fill: "#9aa3ad", "font-size": 12 }, data.kind === "eval" ? "normalized score: good (green) vs defect (red)" : "normalized score: normal (green) vs anomalous (red)");
          if (!scored.length) return;
          let lo = Math.min(0, ...scored.map((it) => it.score)), hi = Math.max(data.threshold * 1.5, ...scored.map((it) => it.score));
          if (hi <= lo) hi = lo + 1;
          const bins = 40, width = (hi - lo) / bins, bad = new Array(bins).fill(0), good = new Array(bins).fill(0);
          for (const it of scored) {
            const b = Math.min(bins - 1, Math.floor((it.score - lo) / width));
            const isBad = data.kind === "eval" ? it.group !== "good" : it.verdict === "anomalous";
            (isBad ? bad : good)[b]++;
          }
          const top = Math.max(1, ...bad.map((v, i) => v + good[i]));
          const x = (v) => m + (v - lo) / (hi - lo) * (W - 2 * m), y = (c) => H - m - c / top * (H - 2 * m);
          for (let b = 0; b < bins; b++) {
            const x0 = x(lo + b * width) + 0.5, w = Math.max(1, (W - 2 * m) / bins - 1);
            if (good[b]) add("rect", { x: x0, y: y(good[b]), width: w, height: y(0) - y(good[b]), fill: "#5cc98a" });
            if (bad[b]) add("rect", { x: x0, y: y(good[b] + bad[b]), width: w, height: y(good[b]) - y(good[b] + bad[b]), fill: "#ff6b57" });
          }
          add("line", { x1: m, x2: W - m, y1: y(0), y2: y(0), stroke: "#9aa3ad" });
          const tx = x(data.threshold);
          add("line", { x1: tx, x2: tx, y1: m - 6, y2: y(0), stroke: "#6aa8ff", "stroke-width": 2, "stroke-dasharray": "4 3", id: "threshold-line" });
          add("text", { x: tx + 4, y: m, fill: "#6aa8ff", "font-size": 11 }, "threshold " + fmt(data.threshold, 2));
          add("text", { x: m, y: H - 8, fill: "#9aa3ad", "font-size": 11 }, fmt(lo, 1));
          add("text", { x: W - m, y: H - 8, fill: "#9aa3ad", "font-size": 11, "text-anchor": "end" }, fmt(hi, 1));
        })();

        // Evaluation: metrics table and curves.
        if (data.metrics) {
          const table = el("table"), head = el("tr");
          for (const h of ["type", "images", "img AUROC", "px AUROC", "AUPRO@0.3", "F1-max", "AP"]) head.appendChild(el("th", "", h));
          table.appendChild(head);
          for (const r of data.metrics) {
            const tr = el("tr");
            for (const v of [r.name, r.images, fmt(r.image_auroc), fmt(r.pixel_auroc), fmt(r.aupro), fmt(r.f1_max), fmt(r.average_precision)]) tr.appendChild(el("td", "", String(v)));
            table.appendChild(tr);
          }
          $("metrics").appendChild(table);
        }
        for (const p of data.plots || []) { const img = el("img"); img.src = p; img.alt = p; $("plots").appendChild(img); }

        // Selection, detail view and keyboard triage.
        let current = -1, zoom = 0;
        const visible = () => cards.map((c, i) => c.hidden ? -1 : i).filter((i) => i >= 0);
        function select(i) {
          if (current >= 0) cards[current].classList.remove("selected");
          current = i;
          if (i < 0) return;
          cards[i].classList.add("selected");
          cards[i].scrollIntoView({ block: "nearest" });
          if (!$("detail").hidden) fillDetail();
        }
        function step(delta) {
          const v = visible();
          if (!v.length) return;
          const at = v.indexOf(current);
          select(at < 0 ? v[0] : v[Math.max(0, Math.min(v.length - 1, at + delta))]);
        }
        function fillDetail() {
          const it = items[current];
          $("d-title").textContent = it.name;
          $("d-path").textContent = it.path;
          $("d-meta").textContent = it.error ? it.error : `${it.verdict} · score ${fmt(it.score)} (raw ${fmt(it.raw_score, 4)}) · area ${fmt(100 * (it.defect_area || 0), 2)}% · ${it.group}` + (it.shift_score === null ? "" : ` · shift ${fmt(it.shift_score)}` + (it.shifted ? " (shifted)" : "")) + (marks[it.path] ? " · marked " + marks[it.path] : "");
          const panels = $("panels");
          panels.replaceChildren();
          const views = [];
          for (const [kind, label] of [["photo", "original"], ["heatmap", "heatmap"], ["overlay", "overlay"], ["mask", "predicted mask"], ["truth", "ground truth"]]) {
            if (!it.images[kind]) continue;
            const panel = el("div", "panel"), view = el("div", "view"), img = el("img");
            panel.appendChild(el("div", "label", label));
            img.src = it.images[kind]; img.alt = label;
            img.addEventListener("load", () => applyZoom());
            view.appendChild(img); panel.appendChild(view); panels.appendChild(panel); views.push(view);
            view.addEventListener("scroll", () => { for (const o of views) if (o !== view) { o.scrollLeft = view.scrollLeft; o.scrollTop = view.scrollTop; } });
          }
          applyZoom();
        }
        function applyZoom() {
          $("panels").classList.toggle("fit", zoom === 0);
          for (const img of $("panels").querySelectorAll("img")) img.style.width = zoom === 0 ? "" : (img.naturalWidth * zoom) + "px";
        }
        function openDetail() { if (current < 0) step(0); if (current < 0) return; $("detail").hidden = false; fillDetail(); }
        function closeDetail() { $("detail").hidden = true; if (current >= 0) cards[current].focus(); }
        function mark(value) {
          if (current < 0) return;
          const path = items[current].path;
          if (value) marks[path] = value; else delete marks[path];
          saveMarks(); drawMark(current);
          if (value) step(1); else if (!$("detail").hidden) fillDetail();
        }
        $("d-close").addEventListener("click", closeDetail);
        $("d-defect").addEventListener("click", () => mark("defect"));
        $("d-false").addEventListener("click", () => mark("false alarm"));
        for (const b of document.querySelectorAll("[data-zoom]")) b.addEventListener("click", () => { zoom = Number(b.dataset.zoom); applyZoom(); });
        // "#open=N" opens the detail view of the N-th card (0 = most suspicious), e.g. from a link.
        { const n = parseInt(new URLSearchParams(location.hash.slice(1)).get("open"), 10); if (n >= 0 && n < items.length) { select(n); openDetail(); } }
        document.addEventListener("keydown", (e) => {
          if (e.target.matches && e.target.matches("input, select") || e.ctrlKey || e.metaKey || e.altKey) return;
          const zooms = [0, 1, 2, 4, 8];
          switch (e.key) {
            case "ArrowRight": case "j": step(1); break;
            case "ArrowLeft": case "k": step(-1); break;
            case "Enter": case "o": openDetail(); break;
            case "Escape": closeDetail(); break;
            case "d": mark("defect"); break;
            case "f": mark("false alarm"); break;
            case "u": mark(null); break;
            case "+": case "=": zoom = zooms[Math.min(zooms.length - 1, zooms.indexOf(zoom) + 1)]; applyZoom(); break;
            case "-": zoom = zooms[Math.max(0, zooms.indexOf(zoom) - 1)]; applyZoom(); break;
            default: return;
          }
          e.preventDefault();
        });

        // Export the marks (with the scores they were made on) as CSV or JSON downloads.
        function markRows() {
          return items.filter((it) => marks[it.path]).map((it) => ({ path: it.path, mark: marks[it.path], score: it.score, verdict: it.verdict }));
        }
        function download(name, type, text) {
          const a = el("a"); a.href = URL.createObjectURL(new Blob([text], { type })); a.download = name;
          document.body.appendChild(a); a.click(); setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
        }
        const csvField = (s) => /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
        $("export-csv").addEventListener("click", () => download("marks.csv", "text/csv",
          "path,mark,score,verdict\n" + markRows().map((r) => [csvField(r.path), r.mark, r.score === null ? "" : r.score, r.verdict].join(",")).join("\n") + "\n"));
        $("export-json").addEventListener("click", () => download("marks.json", "application/json", JSON.stringify(markRows(), null, 2)));
        </script>
        </body>
        </html>
        """#
}
