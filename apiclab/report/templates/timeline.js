// apiclab timeline: draws each story's SVG from the JSON block and redraws on zoom and pan.
// Text from the data is only ever set with textContent, never parsed as HTML.
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const DATA = JSON.parse(document.getElementById("timeline-data").textContent);
  const GUTTER = 118, RIGHT = 16, AXIS = 26, STEPS = 20, MARKERS = 28, LANE = 24, REG = 30, STRIP = 14;
  const MIN_SPAN = 20; // ns: below this the model's clock has nothing more to show
  const hex = (v) => "0x" + v.toString(16).toUpperCase().padStart(2, "0");
  const views = {}; // group key -> [start, end], shared by the stories of one group

  function el(parent, name, attrs, text) {
    const node = document.createElementNS(NS, name);
    for (const k in attrs) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    parent.appendChild(node);
    return node;
  }

  function fmt(ns, step) {
    const a = Math.abs(ns), s = step || a || 1;
    const [div, unit] = s >= 1e8 || a >= 1e9 && s >= 1e6 ? [1e9, " s"] : s >= 1e5 ? [1e6, " ms"] : s >= 100 ? [1e3, " µs"] : [1, " ns"];
    const digits = Math.max(0, Math.min(9, Math.ceil(Math.log10(div / Math.max(step || div, 1)))));
    const text = (ns / div).toFixed(digits);
    return (/^-0(\.0*)?$/.test(text) ? text.slice(1) : text) + unit;
  }

  function fmtAt(ns) {
    // An instant in a list: µs resolution, in the unit of its size.
    return Math.abs(ns) >= 1e6 ? (ns / 1e9).toFixed(6) + " s" : (ns / 1e3).toFixed(3) + " µs";
  }

  function niceStep(span, px) {
    const raw = span / Math.max(px / 110, 1), p = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
    return 10 * p;
  }

  function sampleAt(story, t) {
    let lo = 0, hi = story.samples.length - 1, found = null;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (story.samples[mid][0] <= t) { found = story.samples[mid]; lo = mid + 1; } else hi = mid - 1;
    }
    return found;
  }

  function regKeys(story) {
    const keys = new Set();
    for (const s of story.samples) for (const k in s[2]) keys.add(k);
    return ["tpr", "ppr", "vppr", "rvi", "svi"].filter((k) => keys.has(k));
  }

  function layout(story) {
    const others = story.marks.some((m) => !story.lanes.includes(m[2]));
    const lanes = story.lanes.map(hex).concat(others ? ["other"] : []);
    let y = story.strip ? STRIP + 8 : 0;
    const L = { strip: 0, axis: y, steps: y + AXIS, markers: y + AXIS + STEPS };
    L.lanes = L.markers + MARKERS + 4;
    L.laneNames = lanes;
    L.regs = L.lanes + lanes.length * LANE + 6;
    L.regKeys = regKeys(story);
    L.bottom = L.regs + L.regKeys.length * REG + 4;
    return L;
  }

  function draw(section) {
    const story = DATA.stories[+section.dataset.index];
    const svg = section.querySelector("svg.timeline");
    const key = story.group || "story-" + section.dataset.index;
    const [v0, v1] = views[key];
    const width = Math.max(section.querySelector(".plot").clientWidth || 0, 600);
    const L = layout(story), plotW = width - GUTTER - RIGHT;
    const x = (t) => GUTTER + ((t - v0) / (v1 - v0)) * plotW;
    const visible = (a, b) => b >= v0 && a <= v1;
    svg.textContent = "";
    svg.setAttribute("viewBox", `0 0 ${width} ${L.bottom}`);
    svg.setAttribute("height", L.bottom);
    svg.dataset.viewStart = v0;
    svg.dataset.viewEnd = v1;
    section.querySelector(".range").textContent = `showing ${fmt(v0, v1 - v0)} … ${fmt(v1, v1 - v0)} (${fmt(v1 - v0)})`;
    const clip = el(el(svg, "defs", {}), "clipPath", { id: "clip-" + section.dataset.index });
    el(clip, "rect", { x: GUTTER, y: 0, width: plotW, height: L.bottom });
    if (story.strip) drawStrip(svg, story.strip, width);
    // time axis and grid
    const axis = el(svg, "g", { class: "axis" }), step = niceStep(v1 - v0, plotW);
    for (let t = Math.ceil(v0 / step) * step; t <= v1; t += step) {
      el(axis, "line", { class: "grid", x1: x(t), x2: x(t), y1: L.axis + 16, y2: L.bottom });
      el(axis, "text", { x: x(t) + 2, y: L.axis + 12 }, fmt(t, step));
    }
    // lanes (their backgrounds first: what is drawn later lies on top)
    L.laneNames.forEach((name, i) => {
      const y = L.lanes + i * LANE;
      el(svg, "rect", { class: "lane-bg", x: GUTTER, y: y + 1, width: plotW, height: LANE - 2 });
      const label = DATA.vectorNames[name.toLowerCase()];
      el(svg, "text", { class: "lane-label", "data-vector": name.toLowerCase(), x: 4, y: y + 16 }, label ? `${name} ${label}` : name);
    });
    const body = el(svg, "g", { "clip-path": `url(#clip-${section.dataset.index})` });
    const laneY = (v) => {
      const i = story.lanes.indexOf(v);
      return L.lanes + (i < 0 ? story.lanes.length : i) * LANE;
    };
    for (const [v, state, a, b, open] of story.spans) {
      if (!visible(a, b) || !story.lanes.includes(v)) continue;
      const xa = Math.max(x(a), GUTTER - 2), xb = Math.min(x(b), width);
      const inset = state === "service" ? 3 : 8;
      el(body, "rect", {
        class: "span " + state, "data-vector": hex(v).toLowerCase(), "data-state": state, "data-start": a, "data-end": b,
        "data-open": open, x: xa, y: laneY(v) + inset, width: Math.max(xb - xa, 1), height: LANE - 2 * inset,
      });
    }
    let lastX = {};
    for (const [t, kind, v, note] of story.marks) {
      if (!visible(t, t)) continue;
      const px = x(t), y = laneY(v) + LANE / 2, k = kind + v;
      if (lastX[k] !== undefined && Math.abs(lastX[k] - px) < 1.5) continue; // thin out a dense zoom-out
      lastX[k] = px;
      const attrs = { class: "mark " + kind, "data-vector": hex(v).toLowerCase(), "data-time": t };
      if (kind === "deliver") el(body, "circle", { ...attrs, cx: px, cy: y, r: 4 });
      else if (kind === "eoi") el(body, "path", { ...attrs, d: `M${px - 3},${y - 3}l6,6m0,-6l-6,6` });
      else el(body, "path", { ...attrs, d: `M${px},${y - 10}l4,6h-8z` });
      if (note && kind === "deliver") el(body, "title", {}, note);
    }
    // markers across the whole height, labels staggered so neighbours do not overwrite each other
    const rowEnd = [-1e9, -1e9];
    for (const [t, kind, label] of story.markers) {
      if (!visible(t, t)) continue;
      const px = x(t), g = el(body, "g", { class: "marker " + kind, "data-time": t, "data-kind": kind });
      el(g, "line", { x1: px, x2: px, y1: L.markers, y2: L.bottom });
      el(g, "title", {}, `${label} at ${fmtAt(t)}`);
      const w = 6 * label.length + 8, flip = px + w > width - RIGHT; // near the right edge: label to the left
      const from = flip ? px - w : px;
      const row = rowEnd.findIndex((end) => end < from);
      if (row < 0) continue; // no room for the label at this zoom: the line and its title stay
      rowEnd[row] = flip ? px : px + w;
      el(g, "text", { x: flip ? px - 3 : px + 3, y: L.markers + 10 + row * 12, "text-anchor": flip ? "end" : "start" }, label);
    }
    // register step lines, 0..0xFF
    L.regKeys.forEach((k, i) => {
      const top = L.regs + i * REG, yv = (v) => top + REG - 4 - (v / 255) * (REG - 8);
      el(svg, "text", { class: "reglabel", x: 4, y: top + REG / 2 + 4 }, k.toUpperCase());
      el(svg, "line", { class: "grid", x1: GUTTER, x2: GUTTER + plotW, y1: top + REG - 4, y2: top + REG - 4 });
      let d = "", last = null, lastLabel = -1e9;
      const atStart = sampleAt(story, v0); // the value in effect at the left edge, labelled there
      if (atStart && k in atStart[2]) {
        el(body, "text", { class: "regval", x: GUTTER + 2, y: top + 9 }, hex(atStart[2][k]));
        lastLabel = GUTTER + 2;
      }
      for (const [t, , lv] of story.samples) {
        if (!(k in lv)) continue;
        const px = Math.min(Math.max(x(t), GUTTER - 5), width + 5);
        if (last === null) d += `M${px},${yv(lv[k])}`;
        else if (lv[k] !== last) d += `H${px}V${yv(lv[k])}`;
        if (lv[k] !== last && visible(t, t) && px - lastLabel > 34) {
          el(body, "text", { class: "regval", x: px + 2, y: top + 9 }, hex(lv[k]));
          lastLabel = px;
        }
        last = lv[k];
      }
      if (d) el(body, "path", { class: "reg", "data-reg": k, d: d + `H${x(Math.max(story.end, v1))}` });
    });
    // the explanation's numbered steps, linked to their text
    let stepPrev = -1e9, stepRow = 0;
    for (const [n, t] of story.steps) {
      if (!visible(t, t)) continue;
      const px = x(t);
      stepRow = px - stepPrev < 16 ? stepRow + 1 : 0;
      stepPrev = px;
      const a = el(body, "a", { href: `#step-${section.dataset.index}-${n}`, class: "step", "data-step": n });
      el(a, "circle", { cx: px + stepRow * 15, cy: L.steps + 8, r: 7 });
      el(a, "text", { x: px + stepRow * 15, y: L.steps + 11.5, "text-anchor": "middle" }, String(n));
    }
    el(svg, "line", { class: "cursor", x1: -10, x2: -10, y1: L.axis, y2: L.bottom, visibility: "hidden" });
  }

  function drawStrip(svg, strip, width) {
    const w = (width - GUTTER - RIGHT) / strip.fails.length, g = el(svg, "g", { class: "strip" });
    el(g, "text", { x: 4, y: 11 }, `${strip.reboots} reboots`);
    strip.fails.forEach((f, i) => {
      el(g, "rect", { class: f ? "strip-bad" : "strip-ok", x: GUTTER + i * w, y: 2, width: Math.max(w - (w > 3 ? 1 : 0), 0.5), height: STRIP });
    });
    el(g, "title", {}, `${strip.total_fails} of ${strip.reboots} reboots failed` + (strip.bucket > 1 ? ` (each cell: ${strip.bucket} reboots)` : ""));
  }

  function setView(section, a, b) {
    const story = DATA.stories[+section.dataset.index];
    const key = story.group || "story-" + section.dataset.index;
    // Pan and zoom out no further than the group's whole run, with a little margin.
    const members = DATA.stories.filter((st, i) => (st.group || "story-" + i) === key);
    const s0 = Math.min(...members.map((st) => st.start)), s1 = Math.max(...members.map((st) => st.end));
    const total = Math.max(s1 - s0, MIN_SPAN); // a run of one instant still gets an axis
    const lo = s0 - total * 0.03, hi = s0 + total * 1.03;
    let span = Math.max(b - a, MIN_SPAN);
    span = Math.min(span, hi - lo);
    a = Math.min(Math.max(a, lo), hi - span);
    views[key] = [a, a + span];
    document.querySelectorAll("section.story").forEach((s) => {
      const st = DATA.stories[+s.dataset.index];
      if ((st.group || "story-" + s.dataset.index) === key) draw(s);
    });
  }

  function firstView(story) {
    return story.focus || [story.start, Math.max(story.end, story.start + MIN_SPAN)];
  }

  function zoom(section, factor, atFrac) {
    const svg = section.querySelector("svg.timeline");
    const a = +svg.dataset.viewStart, b = +svg.dataset.viewEnd, at = a + (b - a) * atFrac;
    setView(section, at - (at - a) * factor, at + (b - at) * factor);
  }

  function frac(section, clientX) {
    const svg = section.querySelector("svg.timeline"), r = svg.getBoundingClientRect();
    const w = r.width - GUTTER - RIGHT;
    return Math.min(Math.max((clientX - r.left - GUTTER) / w, 0), 1);
  }

  function hover(section, ev) {
    const story = DATA.stories[+section.dataset.index];
    const svg = section.querySelector("svg.timeline"), tip = section.querySelector(".tip");
    const a = +svg.dataset.viewStart, b = +svg.dataset.viewEnd, f = frac(section, ev.clientX);
    const t = Math.round(a + (b - a) * f), sample = sampleAt(story, t);
    const cursor = svg.querySelector(".cursor"), r = svg.getBoundingClientRect();
    const px = GUTTER + f * (r.width - GUTTER - RIGHT);
    cursor.setAttribute("x1", px); cursor.setAttribute("x2", px); cursor.setAttribute("visibility", "visible");
    const lines = [`t = ${fmt(t, (b - a) / 1000)}`];
    if (sample) for (const k in sample[1]) lines.push(`${k.padEnd(5)} ${sample[1][k]}`);
    tip.textContent = lines.join("\n");
    tip.hidden = false;
    const plot = section.querySelector(".plot").getBoundingClientRect();
    tip.style.left = Math.min(ev.clientX - plot.left + 14, plot.width - 240) + "px";
    tip.style.top = ev.clientY - plot.top + 14 + "px";
  }

  function wire(section) {
    const story = DATA.stories[+section.dataset.index];
    const svg = section.querySelector("svg.timeline"), plot = section.querySelector(".plot");
    let drag = null;
    svg.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      zoom(section, Math.pow(1.004, ev.deltaY), frac(section, ev.clientX));
    }, { passive: false });
    svg.addEventListener("mousedown", (ev) => {
      drag = { x: ev.clientX, a: +svg.dataset.viewStart, b: +svg.dataset.viewEnd };
    });
    window.addEventListener("mouseup", () => { drag = null; });
    svg.addEventListener("mousemove", (ev) => {
      if (drag) {
        const w = svg.getBoundingClientRect().width - GUTTER - RIGHT;
        const dt = ((ev.clientX - drag.x) / w) * (drag.b - drag.a);
        setView(section, drag.a - dt, drag.b - dt);
      }
      hover(section, ev);
    });
    svg.addEventListener("mouseleave", () => {
      section.querySelector(".tip").hidden = true;
      const c = svg.querySelector(".cursor");
      if (c) c.setAttribute("visibility", "hidden");
    });
    plot.addEventListener("keydown", (ev) => {
      const a = +svg.dataset.viewStart, b = +svg.dataset.viewEnd, d = (b - a) * 0.2;
      if (ev.key === "+" || ev.key === "=") zoom(section, 0.5, 0.5);
      else if (ev.key === "-") zoom(section, 2, 0.5);
      else if (ev.key === "ArrowLeft") setView(section, a - d, b - d);
      else if (ev.key === "ArrowRight") setView(section, a + d, b + d);
      else return;
      ev.preventDefault();
    });
    section.querySelectorAll(".controls button").forEach((btn) => btn.addEventListener("click", () => {
      const act = btn.dataset.act;
      if (act === "in") zoom(section, 0.5, 0.5);
      else if (act === "out") zoom(section, 2, 0.5);
      else if (act === "focus") setView(section, ...firstView(story));
      else setView(section, story.start, story.end);
    }));
    section.querySelectorAll("ol.steps li").forEach((li) => {
      li.querySelector(".when").textContent = fmtAt(+li.dataset.time);
      li.addEventListener("click", () => {
        const t = +li.dataset.time, a = +svg.dataset.viewStart, b = +svg.dataset.viewEnd;
        section.querySelectorAll("ol.steps li.lit").forEach((x) => x.classList.remove("lit"));
        li.classList.add("lit");
        if (t < a || t > b) setView(section, t - (b - a) / 2, t + (b - a) / 2);
      });
    });
  }

  const sections = Array.from(document.querySelectorAll("section.story"));
  for (const section of sections) {
    const story = DATA.stories[+section.dataset.index];
    const key = story.group || "story-" + section.dataset.index;
    if (!views[key]) views[key] = firstView(story);
    else views[key] = [Math.min(views[key][0], firstView(story)[0]), Math.max(views[key][1], firstView(story)[1])];
  }
  for (const section of sections) { wire(section); draw(section); }
  let resizeTimer = 0;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => sections.forEach(draw), 100);
  });
  window.addEventListener("beforeprint", () => sections.forEach(draw));
  document.documentElement.dataset.timelineReady = "1";
})();
