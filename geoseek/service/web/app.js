/* geoseek web map: OpenLayers (global `ol`, served from node_modules by the app; no CDN).
 * Talks only to the same-origin API. Coordinates sent to the API are (lon, lat) degrees. */
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const TOOL_ORDER = ["similar", "sketch-map", "sketch", "image", "item"];
  const TOOL_NAMES = { "similar": "Similar places", "sketch-map": "Sketch map", "sketch": "Sketch", "image": "Image", "item": "By item" };
  const state = { collections: [], current: null, token: sessionStorage.getItem("geoseek-token") || "", layers: [],
                  tool: null, busy: 0, thumbUrls: [] };

  // ------------------------------------------------------------------ API
  class ApiError extends Error { constructor(status, body) { super(body && body.detail ? String(body.detail) : `HTTP ${status}`); this.status = status; this.body = body; } }

  async function api(path, options = {}) {
    const headers = Object.assign({}, options.headers || {});
    if (state.token) headers["Authorization"] = "Bearer " + state.token;
    let resp;
    try {
      resp = await fetch(path, Object.assign({}, options, { headers }));
    } catch (e) {
      throw new ApiError(0, { detail: "the server cannot be reached; is `geoseek serve` still running?" });
    }
    if (resp.status === 401) { $("token-form").hidden = false; }
    if (!resp.ok) {
      let body = null;
      try { body = await resp.json(); } catch (e) { body = { detail: `${resp.status} ${resp.statusText}` }; }
      throw new ApiError(resp.status, body);
    }
    const type = resp.headers.get("content-type") || "";
    return type.includes("json") ? resp.json() : resp.blob();
  }

  function friendly(err) {
    if (!(err instanceof ApiError)) return String(err && err.message || err);
    const d = err.message;
    if (err.status === 401) return "This server needs a token: enter it at the top and try again.";
    if (err.status === 413) return "That is too large for this server: " + d;
    if (err.status === 404) return "Not found: " + d;
    if (err.status === 422) return "Please check the input: " + d;
    if (err.status >= 500) return "The server failed on this request (" + d + ").";
    return d;
  }

  function showError(msg) { $("error-text").textContent = msg; $("error").hidden = false; }
  function clearError() { $("error").hidden = true; }
  function setBusy(delta, text) {
    state.busy = Math.max(0, state.busy + delta);
    const s = $("status");
    s.classList.toggle("busy", state.busy > 0);
    if (text !== undefined) s.textContent = text;
    document.querySelectorAll("button.primary").forEach((b) => { b.disabled = state.busy > 0; });
  }
  async function withBusy(text, fn) {
    clearError(); setBusy(+1, text);
    try { return await fn(); }
    catch (e) { showError(friendly(e)); setBusy(0, "failed"); return null; }
    finally { setBusy(-1); if (state.busy === 0 && $("status").textContent === text) $("status").textContent = ""; }
  }

  if (typeof ol === "undefined") {
    showError("OpenLayers is not installed on the server: run `make setup-web` (npm install in geoseek/service/web).");
    return;
  }

  // ------------------------------------------------------------------ map
  const toRgb = (c, a) => `rgba(${c[0]},${c[1]},${c[2]},${a})`;
  const geojson = new ol.format.GeoJSON({ dataProjection: "EPSG:4326", featureProjection: "EPSG:3857" });
  const resultSource = new ol.source.Vector();
  const sketchSource = new ol.source.Vector();
  const extentSource = new ol.source.Vector();
  const queryPoint = new ol.source.Vector();

  function resultStyle(feature) {
    const selected = feature.get("selected");
    return new ol.style.Style({
      stroke: new ol.style.Stroke({ color: selected ? "#ff7a00" : "#2c6bb3", width: selected ? 3 : 2 }),
      fill: new ol.style.Fill({ color: selected ? "rgba(255,122,0,0.25)" : "rgba(44,107,179,0.15)" }),
      image: new ol.style.Circle({ radius: 6, fill: new ol.style.Fill({ color: "#2c6bb3" }), stroke: new ol.style.Stroke({ color: "#fff", width: 1 }) }),
      text: new ol.style.Text({ text: String(feature.get("rank") || ""), font: "bold 13px sans-serif",
        fill: new ol.style.Fill({ color: "#0d2a4a" }), stroke: new ol.style.Stroke({ color: "#fff", width: 3 }) }),
    });
  }
  function sketchStyle(feature) {
    const layer = state.layers.find((l) => l.name === feature.get("layer"));
    const rgb = layer ? layer.rgb : [80, 80, 80];
    const width = layer && layer.kind === "line" ? 5 : 2;
    return new ol.style.Style({
      stroke: new ol.style.Stroke({ color: toRgb(rgb.map((v) => Math.round(v * 0.7)), 1), width }),
      fill: new ol.style.Fill({ color: toRgb(rgb, 0.7) }),
      image: new ol.style.Circle({ radius: 7, fill: new ol.style.Fill({ color: toRgb(rgb, 1) }), stroke: new ol.style.Stroke({ color: "#333", width: 1 }) }),
    });
  }

  const basemapLayer = new ol.layer.Tile({ visible: false });
  const map = new ol.Map({
    target: "map",
    layers: [
      basemapLayer,
      new ol.layer.Vector({ source: extentSource, style: new ol.style.Style({ stroke: new ol.style.Stroke({ color: "rgba(31,58,90,0.6)", width: 1, lineDash: [6, 4] }) }) }),
      new ol.layer.Vector({ source: resultSource, style: resultStyle }),
      new ol.layer.Vector({ source: sketchSource, style: sketchStyle }),
      new ol.layer.Vector({ source: queryPoint, style: new ol.style.Style({ image: new ol.style.RegularShape({ points: 4, radius: 10, radius2: 0, angle: Math.PI / 4, stroke: new ol.style.Stroke({ color: "#d0021b", width: 3 }) }) }) }),
    ],
    view: new ol.View({ center: ol.proj.fromLonLat([14.4, 35.9]), zoom: 10 }),
  });
  window.geoseek = { map, results: resultSource, sketch: sketchSource, state }; // for tests and the console

  function setBasemap(template) {
    // the collection's own tiles when it has them, else the server's basemap (first OSM collection)
    if (!template) { basemapLayer.setVisible(false); return; }
    const source = new ol.source.XYZ({
      url: template,
      maxZoom: 19,
      attributions: "map data © OpenStreetMap contributors (ODbL)",
      tileLoadFunction: (tile, src) => {
        if (!state.token) { tile.getImage().src = src; return; }
        fetch(src, { headers: { Authorization: "Bearer " + state.token } })
          .then((r) => (r.ok ? r.blob() : Promise.reject(r.status)))
          .then((b) => { const u = URL.createObjectURL(b); const img = tile.getImage(); img.onload = () => URL.revokeObjectURL(u); img.src = u; })
          .catch(() => tile.setState(3));
      },
    });
    basemapLayer.setSource(source);
    basemapLayer.setVisible(true);
  }

  function showExtent(bbox) {
    extentSource.clear();
    if (!bbox) return;
    const ext = ol.proj.transformExtent(bbox, "EPSG:4326", "EPSG:3857");
    extentSource.addFeature(new ol.Feature(ol.geom.Polygon.fromExtent(ext)));
    map.getView().fit(ext, { padding: [30, 30, 30, 30], maxZoom: 17 });
  }

  // ------------------------------------------------------------------ results
  function clearThumbs() { state.thumbUrls.forEach((u) => URL.revokeObjectURL(u)); state.thumbUrls = []; }

  function thumbnail(hit) {
    if (!hit.thumbnail_url) { const d = document.createElement("div"); d.className = "noimg"; return d; }
    const img = document.createElement("img");
    img.alt = hit.name || hit.id; img.loading = "lazy";
    if (!state.token) { img.src = hit.thumbnail_url; }
    else {
      api(hit.thumbnail_url).then((b) => { const u = URL.createObjectURL(b); state.thumbUrls.push(u); img.src = u; }).catch(() => {});
    }
    return img;
  }

  function selectHit(id, zoom) {
    resultSource.getFeatures().forEach((f) => f.set("selected", f.getId() === id));
    document.querySelectorAll("#results li").forEach((li) => li.classList.toggle("selected", li.dataset.id === id));
    const f = resultSource.getFeatureById(id);
    if (zoom && f) map.getView().fit(f.getGeometry().getExtent(), { padding: [60, 60, 60, 60], maxZoom: 18, duration: 300 });
  }

  function showResults(resp, title) {
    clearThumbs();
    resultSource.clear();
    const list = $("results");
    list.innerHTML = "";
    $("results-title").textContent = `${title}: ${resp.count} result${resp.count === 1 ? "" : "s"} (${Math.round(resp.took_ms)} ms)`;
    if (!resp.hits.length) { const li = document.createElement("li"); li.className = "empty"; li.textContent = "Nothing matched. Try another query or a wider area."; list.appendChild(li); return; }
    for (const hit of resp.hits) {
      if (hit.footprint && hit.footprint.geometry) {
        const f = geojson.readFeature(hit.footprint);
        f.setId(hit.id); f.set("rank", hit.rank);
        resultSource.addFeature(f);
      }
      const li = document.createElement("li");
      li.dataset.id = hit.id;
      li.appendChild(thumbnail(hit));
      const text = document.createElement("div");
      text.innerHTML = `<div><span class="rank">#${hit.rank}</span> <span class="name"></span></div><div class="meta"></div>`;
      text.querySelector(".name").textContent = hit.name || hit.id;
      text.querySelector(".meta").textContent = `${hit.label ? hit.label + " · " : ""}${hit.score == null ? "" : "score " + hit.score.toFixed(3) + " · "}${hit.id}`;
      if (resp.mode === "sketch-map" && state.lastSketchMap && state.current.modes.includes("feedback")) {
        const fb = document.createElement("button");
        fb.type = "button"; fb.className = "more"; fb.textContent = "this is what I meant";
        fb.title = "store (sketch, this scene) so the sketch-map model can learn from it";
        fb.addEventListener("click", (e) => { e.stopPropagation(); sendFeedback(hit.id, fb); });
        text.appendChild(fb);
      }
      if (state.current.modes.includes("item")) {
        const more = document.createElement("button");
        more.type = "button"; more.className = "more"; more.textContent = "more like this";
        more.addEventListener("click", (e) => { e.stopPropagation(); searchByItem(hit.id); });
        text.appendChild(more);
      }
      li.appendChild(text);
      li.addEventListener("click", () => selectHit(hit.id, true));
      list.appendChild(li);
    }
    const ext = resultSource.getExtent();
    if (resultSource.getFeatures().length && isFinite(ext[0])) map.getView().fit(ext, { padding: [40, 40, 40, 40], maxZoom: 16, duration: 300 });
  }

  map.on("singleclick", (evt) => {
    if (state.tool === "sketch-map" && draw) return;
    const hitFeature = map.forEachFeatureAtPixel(evt.pixel, (f) => (resultSource.hasFeature(f) ? f : null));
    if (hitFeature && state.tool !== "similar") { selectHit(hitFeature.getId(), false); return; }
    if (state.tool === "similar") {
      const [lon, lat] = ol.proj.toLonLat(evt.coordinate);
      searchSimilar(lon, lat);
    }
  });

  const k = () => Math.max(1, Math.min(100, parseInt($("k").value, 10) || 10));
  const colPath = () => "/collections/" + encodeURIComponent(state.current.name);
  const endpointPath = (mode) => {
    const ep = state.current.endpoints[mode];
    return ep ? ep.split(" ")[1].replace("{name}", encodeURIComponent(state.current.name)) : null;
  };

  // ------------------------------------------------------------------ query modes
  async function searchSimilar(lon, lat) {
    queryPoint.clear();
    queryPoint.addFeature(new ol.Feature(new ol.geom.Point(ol.proj.fromLonLat([lon, lat]))));
    const resp = await withBusy("finding similar places…", () =>
      api(`${endpointPath("similar")}?lon=${lon.toFixed(6)}&lat=${lat.toFixed(6)}&k=${k()}`));
    if (resp) showResults(resp, `Similar to (${lon.toFixed(4)}, ${lat.toFixed(4)})`);
  }

  async function searchByItem(id) {
    if (!id) { showError("Enter an item id."); return; }
    $("item-id").value = id;
    const resp = await withBusy("searching…", () => api(colPath() + "/search", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ id, k: k() }) }));
    if (resp) showResults(resp, `Like ${id}`);
  }

  // sketch map: typed objects drawn on the map
  let draw = null;
  function currentLayer() { const c = document.querySelector("#palette input:checked"); return c ? c.value : null; }
  function startDraw() {
    if (draw) { map.removeInteraction(draw); draw = null; }
    const name = currentLayer();
    const layer = state.layers.find((l) => l.name === name);
    if (!layer || state.tool !== "sketch-map") return;
    const type = layer.kind === "area" ? "Polygon" : layer.kind === "line" ? "LineString" : "Point";
    draw = new ol.interaction.Draw({ source: sketchSource, type });
    draw.on("drawend", (e) => { e.feature.set("layer", name); });
    map.addInteraction(draw);
  }
  function buildPalette() {
    const pal = $("palette");
    pal.innerHTML = "";
    state.layers.forEach((l, i) => {
      const lab = document.createElement("label");
      lab.title = l.description || l.name;
      lab.innerHTML = `<input type="radio" name="layer" value="${l.name}"${i === 0 ? " checked" : ""}><span class="swatch"></span><span></span>`;
      lab.querySelector(".swatch").style.background = toRgb(l.rgb, 1);
      lab.querySelector("span:last-child").textContent = l.name.replace(/_/g, " ");
      lab.querySelector("input").addEventListener("change", startDraw);
      pal.appendChild(lab);
    });
  }
  function sketchMapBody() {
    // crs "map": (lon, lat) degrees; the visible map is the canvas when it spans one scene or less
    // (at most 20 km), otherwise the sketch covers its features' bounds.
    const features = sketchSource.getFeatures().map((f) => {
      const obj = geojson.writeFeatureObject(f);
      obj.properties = { layer: f.get("layer") };
      return obj;
    });
    const body = { type: "FeatureCollection", crs: "map", features };
    const view = ol.proj.transformExtent(map.getView().calculateExtent(map.getSize()), "EPSG:3857", "EPSG:4326");
    const [w, s, e, n] = view;
    const kmX = (e - w) * 111.32 * Math.cos(((s + n) / 2) * Math.PI / 180), kmY = (n - s) * 110.54;
    if (Math.max(kmX, kmY) <= 20 && w >= -180 && e <= 180 && s >= -90 && n <= 90) body.bbox = [w, s, e, n];
    return body;
  }
  async function sendFeedback(itemId, button) {
    const resp = await withBusy("saving feedback…", () => api(endpointPath("feedback"), {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sketch: state.lastSketchMap, item_id: itemId }) }));
    if (resp) { button.textContent = "thanks: saved"; button.disabled = true; }
  }
  async function searchSketchMap() {
    if (!sketchSource.getFeatures().length) { showError("Draw at least one object on the map first."); return; }
    const sketch = sketchMapBody();
    state.lastSketchMap = sketch;
    const resp = await withBusy("searching by sketch map…", () => api(endpointPath("sketch-map") + "?k=" + k(), {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(sketch) }));
    if (resp) showResults(resp, "Sketch map");
  }
  $("sketchmap-search").addEventListener("click", searchSketchMap);
  $("sketchmap-clear").addEventListener("click", () => sketchSource.clear());
  $("sketchmap-undo").addEventListener("click", () => { const fs = sketchSource.getFeatures(); if (fs.length) sketchSource.removeFeature(fs[fs.length - 1]); });

  // free-hand raster sketch
  const canvas = $("sketch-canvas");
  const ctx = canvas.getContext("2d");
  let strokes = [];
  function clearCanvas() { ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, canvas.width, canvas.height); strokes = []; }
  clearCanvas();
  let drawing = false;
  const pos = (e) => { const r = canvas.getBoundingClientRect(); return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height]; };
  canvas.addEventListener("pointerdown", (e) => { drawing = true; canvas.setPointerCapture(e.pointerId); const p = pos(e); strokes.push([p]); ctx.beginPath(); ctx.moveTo(p[0], p[1]); });
  canvas.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    const p = pos(e); strokes[strokes.length - 1].push(p);
    ctx.lineWidth = +$("sketch-width").value; ctx.lineCap = "round"; ctx.lineJoin = "round"; ctx.strokeStyle = "#000";
    ctx.lineTo(p[0], p[1]); ctx.stroke();
  });
  canvas.addEventListener("pointerup", () => { drawing = false; });
  $("sketch-clear").addEventListener("click", clearCanvas);
  $("sketch-search").addEventListener("click", async () => {
    if (!strokes.length) { showError("Draw a sketch first."); return; }
    const blob = await new Promise((res) => canvas.toBlob(res, "image/png"));
    const form = new FormData(); form.append("file", blob, "sketch.png"); form.append("k", String(k()));
    const resp = await withBusy("searching by sketch…", () => api(endpointPath("sketch"), { method: "POST", body: form }));
    if (resp) showResults(resp, "Sketch");
  });

  // image upload
  $("image-file").addEventListener("change", () => {
    const f = $("image-file").files[0];
    const img = $("image-preview");
    if (f) { img.src = URL.createObjectURL(f); img.hidden = false; } else { img.hidden = true; }
  });
  $("image-search").addEventListener("click", async () => {
    const f = $("image-file").files[0];
    if (!f) { showError("Choose an image file first."); return; }
    const form = new FormData(); form.append("file", f, f.name); form.append("k", String(k()));
    if ($("image-located").checked) {
      const [lon, lat] = ol.proj.toLonLat(map.getView().getCenter());
      form.append("lon", lon.toFixed(6)); form.append("lat", lat.toFixed(6));
      form.append("geo_weight", String(+$("image-geo-weight").value / 100));
    }
    const resp = await withBusy("searching by image…", () => api(endpointPath("image"), { method: "POST", body: form }));
    if (resp) showResults(resp, "Image " + f.name);
  });

  $("item-search").addEventListener("click", () => searchByItem($("item-id").value.trim()));
  $("error-close").addEventListener("click", clearError);

  // ------------------------------------------------------------------ tools and collections
  function selectTool(mode) {
    state.tool = mode;
    document.querySelectorAll("#tool-tabs button").forEach((b) => b.setAttribute("aria-selected", String(b.dataset.mode === mode)));
    document.querySelectorAll("section.tool").forEach((s) => { s.hidden = s.dataset.mode !== mode; });
    map.getTargetElement().style.cursor = mode === "similar" ? "crosshair" : "";
    startDraw();
  }

  function showTools() {
    const tabs = $("tool-tabs");
    tabs.innerHTML = "";
    const modes = TOOL_ORDER.filter((m) => state.current.modes.includes(m));
    for (const m of modes) {
      const b = document.createElement("button");
      b.type = "button"; b.role = "tab"; b.dataset.mode = m; b.textContent = TOOL_NAMES[m];
      b.addEventListener("click", () => selectTool(m));
      tabs.appendChild(b);
    }
    if (!modes.length) { tabs.textContent = "This collection supports no interactive query mode."; }
    selectTool(modes.includes(state.tool) ? state.tool : modes[0] || null);
  }

  function selectCollection(name) {
    state.current = state.collections.find((c) => c.name === name) || state.collections[0];
    if (!state.current) return;
    const c = state.current;
    $("collection-info").textContent = `${c.count.toLocaleString()} ${c.modality} · ${c.model_id || "?"} · ${c.dim}-d`;
    resultSource.clear(); queryPoint.clear(); sketchSource.clear(); $("results").innerHTML = ""; $("results-title").textContent = "Results";
    const own = c.endpoints.basemap ? c.endpoints.basemap.split(" ")[1].replace("{name}", encodeURIComponent(c.name)) : null;
    setBasemap(own || state.basemap);
    showExtent(c.items_bbox || c.bbox);  // where the items are, not a few far-off ones
    showTools();
    if (!c.bbox) browse();
  }

  async function browse() {
    // a collection without locations: list some items to start from ("more like this")
    const items = await withBusy("loading items…", () => api(colPath() + "/items?limit=24"));
    if (!items) return;
    const hits = items.map((it, i) => Object.assign({ rank: i + 1, score: null }, it));
    showResults({ count: hits.length, took_ms: 0, hits }, "Browse (no locations in this collection)");
  }

  async function load() {
    const resp = await withBusy("loading collections…", () => api("/collections"));
    if (!resp) return;
    state.collections = resp.collections;
    state.basemap = resp.basemap;
    if (resp.collections.some((c) => c.modes.includes("sketch-map"))) {
      const layers = await withBusy("loading layers…", () => api("/layers"));
      state.layers = layers || [];
      buildPalette();
    }
    const sel = $("collection");
    sel.innerHTML = "";
    for (const c of resp.collections) { const o = document.createElement("option"); o.value = c.name; o.textContent = c.name; sel.appendChild(o); }
    if (!resp.collections.length) { showError("This server has no collections."); return; }
    selectCollection(resp.collections[0].name);
    document.body.dataset.ready = "1";
  }

  $("collection").addEventListener("change", (e) => selectCollection(e.target.value));
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.token = $("token").value.trim();
    sessionStorage.setItem("geoseek-token", state.token);
    $("token-form").hidden = true;
    load();
  });
  load();
})();
