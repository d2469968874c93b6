/* gencritic report: sort, filter and leaderboards over the data embedded in this page.
   No network access: everything the page shows is in #report-data or already in the DOM. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var state = { col: null, dir: 1, text: "", failedOnly: false };
  var numeric = {};
  var metric = {};
  data.numeric.forEach(function (c) { numeric[c] = true; });
  data.metrics.forEach(function (c) { metric[c] = true; });

  function fmt(v, col) {
    if (v === null || v === undefined || v === "") return "";
    if (typeof v === "number") {
      if (metric[col]) return v.toFixed(4);
      return Number.isInteger(v) ? String(v) : String(Number(v.toFixed(4)));
    }
    return String(v);
  }

  function strip(itemId) {
    var wrap = document.createElement("div");
    wrap.className = "strip";
    (data.thumbs[itemId] || []).forEach(function (t) {
      var fig = document.createElement("figure");
      var img = document.createElement("img");
      img.src = t.src; img.alt = itemId + " " + t.label; img.loading = "lazy";
      var cap = document.createElement("figcaption");
      cap.textContent = t.label;
      fig.appendChild(img); fig.appendChild(cap); wrap.appendChild(fig);
    });
    return wrap;
  }

  function compare(a, b) {
    var i = data.columns.indexOf(state.col);
    var x = a[i], y = b[i];
    var xMissing = x === null || x === "", yMissing = y === null || y === "";
    if (xMissing || yMissing) return xMissing === yMissing ? 0 : (xMissing ? 1 : -1);  /* missing last */
    if (typeof x === "number" && typeof y === "number") return state.dir * (x - y);
    return state.dir * String(x).localeCompare(String(y));
  }

  function visibleRows() {
    var text = state.text.toLowerCase();
    var successIdx = data.columns.indexOf("success");
    var rows = data.rows.filter(function (r) {
      if (state.failedOnly && r[successIdx] !== false) return false;
      if (!text) return true;
      return r.some(function (v) { return v !== null && String(v).toLowerCase().indexOf(text) !== -1; });
    });
    if (state.col !== null) rows = rows.slice().sort(compare);
    return rows;
  }

  function renderTable() {
    var body = document.querySelector("#items tbody");
    var rows = visibleRows();
    var frag = document.createDocumentFragment();
    var idIdx = data.columns.indexOf("item_id"), successIdx = data.columns.indexOf("success");
    rows.forEach(function (r) {
      var tr = document.createElement("tr");
      tr.dataset.itemId = r[idIdx];
      if (r[successIdx] === false) tr.className = "failed";
      var td = document.createElement("td");
      td.appendChild(strip(r[idIdx]));
      tr.appendChild(td);
      data.columns.forEach(function (c, i) {
        var cell = document.createElement("td");
        cell.textContent = fmt(r[i], c);
        if (numeric[c]) cell.className = "num";
        if (c === "error") cell.className = "err";
        cell.dataset.col = c;
        tr.appendChild(cell);
      });
      frag.appendChild(tr);
    });
    body.replaceChildren(frag);
    document.getElementById("row-count").textContent = rows.length + " of " + data.rows.length + " items";
  }

  function renderLeaderboard() {
    var select = document.getElementById("group-by");
    var table = document.getElementById("leaderboard");
    if (!select || !table) return;
    var board = data.leaderboards[select.value] || [];
    var cols = ["group", "n", "successes"].concat(data.metrics);
    var head = document.createElement("tr");
    cols.forEach(function (c) { var th = document.createElement("th"); th.textContent = c === "group" ? select.value : c; head.appendChild(th); });
    var thead = document.createElement("thead"); thead.appendChild(head);
    var tbody = document.createElement("tbody");
    board.forEach(function (e, rank) {
      var tr = document.createElement("tr");
      cols.forEach(function (c) {
        var td = document.createElement("td");
        var v = e[c];
        td.textContent = typeof v === "number" && c !== "n" && c !== "successes" ? v.toFixed(4) : (v === null ? "" : String(v));
        if (typeof v === "number") td.className = "num";
        tr.appendChild(td);
      });
      tbody.appendChild(tr);
    });
    table.replaceChildren(thead, tbody);
  }

  document.querySelectorAll("#items th.sortable").forEach(function (th) {
    th.addEventListener("click", function () {
      var col = th.dataset.col;
      if (state.col === col) state.dir = -state.dir;
      else { state.col = col; state.dir = numeric[col] && data.higher[col] !== false ? -1 : 1; }
      document.querySelectorAll("#items th.sortable").forEach(function (o) { o.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", state.dir === 1 ? "ascending" : "descending");
      renderTable();
    });
  });
  document.getElementById("filter").addEventListener("input", function (e) { state.text = e.target.value; renderTable(); });
  document.getElementById("failed-only").addEventListener("change", function (e) { state.failedOnly = e.target.checked; renderTable(); });
  var groupBy = document.getElementById("group-by");
  if (groupBy) groupBy.addEventListener("change", renderLeaderboard);
  renderTable();
  renderLeaderboard();
})();
