// eventrec's dashboard: fetches its own JSON endpoints and draws SVG plots. No library,
// no request to any other host. Every plotted data point is an element of class "datum".
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#1f6feb", "#e8590c", "#2f9e44", "#ae3ec9", "#0c8599", "#f08c00", "#c92a2a", "#5c7cfa"];
const OUTCOME_COLORS = {
  published: "#2f9e44", gated: "#e8590c", too_little_data: "#868e96", no_model: "#f08c00",
  failed: "#c92a2a", lock_busy: "#5c7cfa", stopped: "#495057",
};
const REFRESH_MS = 10000;

function node(tag, attrs, parent, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) element.setAttribute(name, value);
  if (text !== undefined) element.textContent = text;
  if (parent) parent.appendChild(element);
  return element;
}

function html(tag, attrs, parent, text) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) element.setAttribute(name, value);
  if (text !== undefined) element.textContent = text;
  if (parent) parent.appendChild(element);
  return element;
}

function fmt(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  const size = Math.abs(value);
  if (Number.isInteger(value)) return value.toLocaleString("en");
  if (size >= 1000) return Math.round(value).toLocaleString("en");
  if (size >= 10) return value.toFixed(0);
  if (size >= 1) return value.toFixed(1);
  if (size === 0) return "0";
  return value.toPrecision(2);
}

function clock(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString("en-GB", { hour12: false });
}

function empty(container, message) {
  container.replaceChildren();
  html("p", { class: "empty" }, container, message);
}

function legend(container, entries) {
  const box = html("div", { class: "legend" }, container);
  for (const [label, color] of entries) {
    const item = html("span", {}, box);
    html("i", { style: `background:${color}` }, item);
    item.appendChild(document.createTextNode(label));
  }
}

// series: [{name, color, points: [[x, y, title], ...]}]; xLabel(x) names a tick.
function lineChart(container, series, options) {
  const points = series.flatMap((s) => s.points);
  if (points.length === 0) return empty(container, options.empty);
  container.replaceChildren();
  const width = 560, height = 210, left = 48, right = 12, top = 10, bottom = 26;
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  let x0 = Math.min(...xs), x1 = Math.max(...xs);
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  const y1 = Math.max(...ys, options.minTop || 0) * 1.1 || 1;
  const sx = (x) => left + ((x - x0) / (x1 - x0)) * (width - left - right);
  const sy = (y) => top + (1 - y / y1) * (height - top - bottom);
  const svg = node("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" }, container);
  for (let i = 0; i <= 4; i++) {
    const y = (y1 * i) / 4;
    node("line", { class: "grid", x1: left, x2: width - right, y1: sy(y), y2: sy(y) }, svg);
    node("text", { x: left - 6, y: sy(y) + 4, "text-anchor": "end" }, svg, fmt(y));
  }
  node("line", { class: "axis", x1: left, x2: width - right, y1: sy(0), y2: sy(0) }, svg);
  const ticks = options.ticks || [x0, x1];
  for (const x of ticks) {
    // Labels at either end stay inside the plot.
    const anchor = sx(x) < left + 30 ? "start" : sx(x) > width - right - 30 ? "end" : "middle";
    node("text", { x: sx(x), y: height - 8, "text-anchor": anchor }, svg, options.xLabel(x));
  }
  series.forEach((s, index) => {
    const color = s.color || COLORS[index % COLORS.length];
    if (s.points.length > 1) {
      const path = s.points.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ");
      node("polyline", { points: path, fill: "none", stroke: color, "stroke-width": 2 }, svg);
    }
    for (const [x, y, title] of s.points) {
      const dot = node("circle", { class: "datum", cx: sx(x), cy: sy(y), r: 3.5, fill: color }, svg);
      node("title", {}, dot, `${s.name}: ${fmt(y)}${title ? " · " + title : ""}`);
    }
  });
  legend(container, series.map((s, i) => [s.name, s.color || COLORS[i % COLORS.length]]));
}

// bars: [{label, value, color}], drawn horizontally, largest first as given.
function barChart(container, bars, options) {
  if (bars.length === 0) return empty(container, options.empty);
  container.replaceChildren();
  const width = 560, row = 22, labelWidth = options.labelWidth || 170, right = 56;
  const height = bars.length * row + 6;
  const top = Math.max(...bars.map((b) => b.value)) || 1;
  const svg = node("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" }, container);
  bars.forEach((bar, i) => {
    const y = 3 + i * row;
    const length = Math.max(2, (bar.value / top) * (width - labelWidth - right));
    const label = bar.label.length > 28 ? bar.label.slice(0, 27) + "…" : bar.label;
    node("text", { class: "bar-label", x: labelWidth - 6, y: y + 14, "text-anchor": "end" }, svg, label);
    const rect = node("rect", {
      class: "datum", x: labelWidth, y: y + 2, width: length, height: row - 6, rx: 2,
      fill: bar.color || COLORS[0],
    }, svg);
    node("title", {}, rect, `${bar.label}: ${fmt(bar.value)}`);
    node("text", { x: labelWidth + length + 4, y: y + 14 }, svg, fmt(bar.value));
  });
}

async function fetchJSON(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function section(name) {
  return document.querySelector(`section[data-section="${name}"]`);
}

function plot(name) {
  return document.querySelector(`[data-plot="${name}"]`);
}

function renderModels(data) {
  const versions = data.versions.filter((v) => v.validation_ndcg !== null);
  const index = (v) => data.versions.indexOf(v);
  lineChart(plot("validation"), [
    { name: "eventrec", color: COLORS[0],
      points: versions.map((v) => [index(v), v.validation_ndcg, v.version]) },
    { name: "popularity", color: COLORS[1],
      points: versions.filter((v) => v.popularity_ndcg !== null)
        .map((v) => [index(v), v.popularity_ndcg, v.version]) },
    { name: "trending", color: COLORS[2],
      points: versions.filter((v) => v.trending_ndcg !== null && v.trending_ndcg !== undefined)
        .map((v) => [index(v), v.trending_ndcg, v.version]) },
  ].filter((s) => s.name === "eventrec" || s.points.length > 0), {
    empty: "No model version yet: the trainer has not published one.",
    xLabel: (x) => (data.versions[x] ? data.versions[x].version : ""),
    ticks: versions.map(index),
  });
  const body = section("models").querySelector("tbody");
  body.replaceChildren();
  for (const v of [...data.versions].reverse()) {
    const tr = html("tr", v.current ? { class: "current" } : {}, body);
    const cells = [
      v.version + (v.current ? " (current)" : ""), (v.trained_at || "").replace("T", " ").slice(0, 19),
      fmt(v.validation_ndcg), fmt(v.popularity_ndcg), fmt(v.interactions),
      v.gated === false ? "no (too few users)" : v.gated ? "yes" : "–",
    ];
    for (const cell of cells) html("td", {}, tr, cell);
  }
}

function renderCycles(data) {
  const cycles = data.cycles.filter((c) => c.at);
  const outcomes = [...new Set(cycles.map((c) => c.outcome))];
  const series = outcomes.map((outcome) => ({
    name: outcome, color: OUTCOME_COLORS[outcome] || "#495057",
    points: cycles.filter((c) => c.outcome === outcome)
      .map((c) => [Date.parse(c.at) / 1000, c.seconds || 0, c.version || c.reason]),
  }));
  lineChart(plot("cycles"), series.map((s) => ({ ...s, points: s.points })), {
    empty: "No training cycle recorded yet.",
    xLabel: clock,
  });
  // Points of one outcome are not a trend: drop the connecting lines.
  plot("cycles").querySelectorAll("polyline").forEach((line) => line.remove());
  const list = section("gate").querySelector("ol.cycles");
  list.replaceChildren();
  for (const c of [...cycles].reverse().slice(0, 12)) {
    const item = html("li", {}, list);
    html("span", { class: "outcome", style: `color:${OUTCOME_COLORS[c.outcome] || "#495057"}` }, item, c.outcome);
    item.appendChild(document.createTextNode(` ${c.at.slice(11, 19)} · ${c.reason || ""}`));
  }
}

function renderIngestion(data) {
  const partitions = [...new Set(data.samples.flatMap((s) => Object.keys(s.lag)))]
    .sort((a, b) => Number(a) - Number(b));
  const times = data.samples.map((s) => s.at);
  lineChart(plot("lag"), partitions.map((p) => ({
    name: `partition ${p}`,
    points: data.samples.filter((s) => p in s.lag).map((s) => [s.at, s.lag[p], clock(s.at)]),
  })), {
    empty: data.error ? "Cannot reach Kafka or Redis." : "No sample yet.",
    xLabel: clock, ticks: times.length ? [times[0], times[times.length - 1]] : undefined,
  });
  section("lag").querySelector(".note").textContent = data.error ? `Sampling failed: ${data.error}` : "";
  const rateSeries = [
    ["applied", "applied_per_second", COLORS[0]],
    ["de-duplicated", "deduplicated_per_second", COLORS[4]],
    ["dead-lettered", "dead_lettered_per_second", COLORS[6]],
  ].map(([name, key, color]) => ({
    name, color, points: data.rates.map((r) => [r.at, r[key], clock(r.at)]),
  }));
  lineChart(plot("rates"), rateSeries, {
    empty: "Rates appear after two samples.", xLabel: clock,
  });
  const reasons = Object.entries(data.dead_letters).map(([label, value]) => ({
    label, value, color: COLORS[6],
  }));
  barChart(plot("dead-letters"), reasons, { empty: "No dead letters: every message was valid." });
}

function renderTrending(data) {
  barChart(plot("trending"), data.events.map((e) => ({
    label: `${e.title}${e.city ? " · " + e.city : ""}`, value: e.score, color: COLORS[2],
  })), { empty: "Nothing trending yet: the trainer writes this list.", labelWidth: 230 });
}

function renderExperiments(data) {
  const box = section("experiments").querySelector(".experiments");
  box.replaceChildren();
  if (data.experiments.length === 0) {
    html("p", { class: "empty" }, box, data.note || "No experiments are running.");
    return;
  }
  const list = html("ul", {}, box);
  for (const experiment of data.experiments) {
    html("li", {}, list, JSON.stringify(experiment));
  }
}

const PARTS = [
  ["/dashboard/api/models", (data) => { renderModels(data); renderCycles(data); }, ["models", "gate"]],
  ["/dashboard/api/ingestion", renderIngestion, ["lag", "rates", "dead-letters"]],
  ["/dashboard/api/trending", renderTrending, ["trending"]],
  ["/dashboard/api/experiments", renderExperiments, ["experiments"]],
];

async function refresh() {
  await Promise.all(PARTS.map(async ([path, render, names]) => {
    try {
      render(await fetchJSON(path));
      for (const name of names) section(name).dataset.state = "ready";
    } catch (error) {
      for (const name of names) {
        section(name).dataset.state = "error";
        section(name).title = String(error);
      }
    }
  }));
  document.getElementById("updated").textContent = new Date().toLocaleTimeString("en-GB");
  document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
}

refresh();
setInterval(refresh, REFRESH_MS);
