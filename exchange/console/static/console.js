// Draws the monthly report's charts with Chart.js (vendored) from the page's JSON data.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var data = document.getElementById("chart-data");
  if (!data || typeof Chart === "undefined") { return; }
  var d = JSON.parse(data.textContent);
  var palette = ["#1f5fa8", "#c0392b", "#2e8b57", "#8e44ad", "#d35400", "#16a085", "#7f8c8d"];
  var sets = Object.keys(d.delivered).map(function (consumer, i) {
    return { label: consumer, data: d.delivered[consumer], backgroundColor: palette[i % palette.length] };
  });
  var common = { animation: false, responsive: true, maintainAspectRatio: false,
                 scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } };
  new Chart(document.getElementById("chart-delivered"), {
    type: "bar", data: { labels: d.days, datasets: sets }, options: common });
  new Chart(document.getElementById("chart-refused"), {
    type: "line",
    data: { labels: d.days, datasets: [
      { label: "拒绝 refusals", data: d.refused, borderColor: "#c0392b", backgroundColor: "#c0392b" },
      { label: "逾期 overdue", data: d.overdue, borderColor: "#d35400", backgroundColor: "#d35400" } ] },
    options: { animation: false, responsive: true, maintainAspectRatio: false,
               scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } } });
});
