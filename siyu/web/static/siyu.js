// Draws the overview charts from the JSON the server embedded (no data fetched by the browser).
(function () {
  var el = document.getElementById("chart-data");
  if (!el || !window.echarts) return;
  var data = JSON.parse(el.textContent);
  var money = function (v) { return "¥" + Number(v).toLocaleString(undefined, {maximumFractionDigits: 0}); };

  var wf = document.getElementById("waterfall");
  if (wf && data.waterfall) {
    // A waterfall as two stacked bars: an invisible base and the visible step.
    var labels = [], base = [], up = [], down = [], level = 0;
    data.waterfall.steps.forEach(function (s, i) {
      labels.push(s.label);
      if (i === 0) { base.push(0); up.push(s.value); down.push(0); level = s.value; return; }
      if (s.value >= 0) { base.push(level); up.push(s.value); down.push(0); level += s.value; }
      else { level += s.value; base.push(level); up.push(0); down.push(-s.value); }
    });
    labels.push(data.waterfall.total.label); base.push(0); up.push(data.waterfall.total.value); down.push(0);
    var chart = echarts.init(wf);
    chart.setOption({
      grid: {left: 70, right: 10, top: 20, bottom: 40},
      tooltip: {trigger: "axis", valueFormatter: money},
      xAxis: {type: "category", data: labels, axisLabel: {interval: 0}},
      yAxis: {type: "value", axisLabel: {formatter: money}},
      series: [
        {type: "bar", stack: "w", data: base, itemStyle: {color: "transparent"}, tooltip: {show: false}},
        {type: "bar", stack: "w", data: up, itemStyle: {color: "#07a35a"}},
        {type: "bar", stack: "w", data: down, itemStyle: {color: "#c0392b"}}
      ]
    });
    window.addEventListener("resize", function () { chart.resize(); });
  }

  var lc = document.getElementById("lifecycle");
  if (lc && data.lifecycle) {
    var c2 = echarts.init(lc);
    c2.setOption({
      grid: {left: 60, right: 10, top: 20, bottom: 30},
      tooltip: {trigger: "axis"},
      xAxis: {type: "category", data: data.lifecycle.labels},
      yAxis: {type: "value"},
      series: [{type: "bar", data: data.lifecycle.values, itemStyle: {color: "#3b82c4"},
                label: {show: true, position: "top"}}]
    });
    window.addEventListener("resize", function () { c2.resize(); });
  }
})();

// The cohort heatmap: cohorts down, offsets across; blank cells are not yet observable.
(function () {
  var el = document.getElementById("chart-data"), hm = document.getElementById("heatmap");
  if (!el || !hm || !window.echarts) return;
  var data = JSON.parse(el.textContent).heatmap;
  if (!data) return;
  var cohorts = data.cohorts.map(function (c) { return c.cohort + " (" + c.size + ")"; });
  var cells = [];
  data.cohorts.forEach(function (c, y) {
    c.values.forEach(function (v, x) {
      if (v !== null) cells.push([x, y, Number(c.labels[x])]);
    });
  });
  var chart = echarts.init(hm);
  chart.setOption({
    grid: {left: 150, right: 20, top: 10, bottom: 70},
    tooltip: {formatter: function (p) { return cohorts[p.value[1]] + " · +" + p.value[0] + ": " + data.cohorts[p.value[1]].labels[p.value[0]] + "%"; }},
    xAxis: {type: "category", data: data.offsets.map(function (k) { return "+" + k; }), splitArea: {show: true}},
    yAxis: {type: "category", data: cohorts, inverse: true, splitArea: {show: true}},
    visualMap: {min: 0, max: 100, orient: "horizontal", left: "center", bottom: 0, text: ["100%", "0%"],
                inRange: {color: ["#f3f8fc", "#3b82c4", "#0b3d6e"]}},
    series: [{type: "heatmap", data: cells, label: {show: true, formatter: function (p) { return data.cohorts[p.value[1]].labels[p.value[0]] + "%"; }}}]
  });
  window.addEventListener("resize", function () { chart.resize(); });
})();
