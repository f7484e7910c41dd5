// Draws the dashboard's charts with Chart.js from the JSON the page embeds.
(function () {
  if (typeof Chart === "undefined") return;
  const read = (id) => JSON.parse(document.getElementById(id).textContent);
  const palette = ["#1570ef", "#079455", "#dc6803", "#7a5af8", "#d92d20", "#0e9384"];
  const trend = read("trend-data");
  const datasets = [];
  trend.series.forEach((s, i) => {
    const color = palette[i % palette.length];
    datasets.push({ type: "line", label: s.channel + " match rate %", data: s.match_rate, borderColor: color,
                    backgroundColor: color, yAxisID: "rate", spanGaps: true, tension: 0.2 });
    datasets.push({ type: "bar", label: s.channel + " discrepancies", data: s.discrepancies,
                    backgroundColor: color + "55", yAxisID: "count" });
  });
  new Chart(document.getElementById("trend"), {
    data: { labels: trend.labels.map((d) => d.slice(5)), datasets },
    options: { animation: false, responsive: true, interaction: { mode: "index", intersect: false },
      scales: { rate: { position: "left", title: { display: true, text: "match rate %" } },
                count: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false },
                         title: { display: true, text: "discrepancies" } } } },
  });
  const aging = read("aging-data");
  const colors = { low: "#98a2b3", medium: "#1570ef", high: "#dc6803", critical: "#d92d20" };
  new Chart(document.getElementById("aging"), {
    type: "bar",
    data: { labels: aging.ages, datasets: aging.severities.map((s) => ({ label: s, backgroundColor: colors[s],
      data: aging.ages.map((a) => (aging.counts[s] || {})[a] || 0) })) },
    options: { animation: false, responsive: true, scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
  });
})();
