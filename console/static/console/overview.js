/* The overview's activity chart: reads the data the page carries in a JSON script block (not
   executed, so the CSP allows it) and draws it with the project's copy of Chart.js. */
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  var source = document.getElementById("overview-chart-data");
  var canvas = document.getElementById("overview-chart");
  if (!source || !canvas || typeof window.Chart === "undefined") {
    return;
  }
  var data = JSON.parse(source.textContent);
  var style = getComputedStyle(document.documentElement);
  var text = style.getPropertyValue("--body-fg").trim() || "#333";
  var accent = style.getPropertyValue("--primary").trim() || "#79aec8";
  new window.Chart(canvas, {
    data: {
      labels: data.days,
      datasets: [
        {
          type: "bar",
          label: "Payment volume (USD)",
          data: data.volume_usd.map(Number), // display only: the amounts themselves stay strings
          backgroundColor: accent,
          yAxisID: "usd"
        },
        {
          type: "line",
          label: "Conversions completed",
          data: data.conversions,
          borderColor: "#2e7d32",
          backgroundColor: "#2e7d32",
          yAxisID: "count"
        },
        {
          type: "line",
          label: "Payouts completed",
          data: data.payouts,
          borderColor: "#c62828",
          backgroundColor: "#c62828",
          yAxisID: "count"
        }
      ]
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      color: text,
      scales: {
        usd: { type: "linear", position: "left", beginAtZero: true, title: { display: true, text: "USD", color: text } },
        count: {
          type: "linear",
          position: "right",
          beginAtZero: true,
          ticks: { precision: 0 },
          grid: { drawOnChartArea: false },
          title: { display: true, text: "completed", color: text }
        }
      }
    }
  });
  canvas.setAttribute("data-drawn", "true");
});
