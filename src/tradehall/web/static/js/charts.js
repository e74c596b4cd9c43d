// lightweight-charts (vendored, global `LightweightCharts`): candles with markers, and line charts.
const LWC = window.LightweightCharts;

export const toSeconds = (t) => (typeof t === "number" ? (t > 1e12 ? Math.floor(t / 1000) : t) : Math.floor(Date.parse(t) / 1000));

const BASE = {
  autoSize: true,
  layout: { attributionLogo: false, background: { color: "#ffffff" }, textColor: "#1b1f24" },
  grid: { vertLines: { color: "#eef0f3" }, horzLines: { color: "#eef0f3" } },
  timeScale: { timeVisible: true, secondsVisible: false },
};

export function candleChart(container) {
  const chart = LWC.createChart(container, BASE);
  const series = chart.addSeries(LWC.CandlestickSeries, { upColor: "#2e7d32", downColor: "#c62828", wickUpColor: "#2e7d32", wickDownColor: "#c62828", borderVisible: false });
  const markers = LWC.createSeriesMarkers(series, []);
  const bar = (c) => ({ time: toSeconds(c.t), open: Number(c.open), high: Number(c.high), low: Number(c.low), close: Number(c.close) });
  return {
    setCandles(candles) { series.setData(candles.map(bar)); chart.timeScale().fitContent(); },
    updateCandle(candle) { try { series.update(bar(candle)); } catch { /* an older bar than the last one */ } },
    markers(list) { markers.setMarkers(list.sort((a, b) => a.time - b.time)); },
    remove() { chart.remove(); },
  };
}

/** A line chart of [[t, value], ...] series: `{name: {points, color}}`. */
export function lineChart(container, lines) {
  const chart = LWC.createChart(container, { ...BASE, leftPriceScale: { visible: lines.length > 1 } });
  for (const [index, { points, color, title }] of lines.entries()) {
    // a second line (drawdown) has its own scale, on the left
    const series = chart.addSeries(LWC.LineSeries, { color, lineWidth: 2, title, priceScaleId: index === 0 ? "right" : "left" });
    const seen = new Map();
    for (const [t, v] of points) seen.set(toSeconds(t), Number(v)); // one value per second, the last
    series.setData([...seen].sort((a, b) => a[0] - b[0]).map(([time, value]) => ({ time, value })));
  }
  chart.timeScale().fitContent();
  return chart;
}

/** The depth chart: cumulative size against price (an options chart: price on the horizontal axis). */
export function depthChart(container) {
  const chart = LWC.createOptionsChart(container, { ...BASE, timeScale: {}, handleScroll: false, handleScale: false });
  const bids = chart.addSeries(LWC.AreaSeries, { lineColor: "#1b6e20", topColor: "rgba(27,110,32,0.35)", bottomColor: "rgba(27,110,32,0.05)", lineType: 1, priceLineVisible: false, lastValueVisible: false });
  const asks = chart.addSeries(LWC.AreaSeries, { lineColor: "#b3261e", topColor: "rgba(179,38,30,0.35)", bottomColor: "rgba(179,38,30,0.05)", lineType: 1, priceLineVisible: false, lastValueVisible: false });
  return {
    /** `bidLevels` best first (descending), `askLevels` best first (ascending), each [price, cumulative]. */
    update(bidLevels, askLevels) {
      bids.setData(bidLevels.map(([p, c]) => ({ time: Number(p), value: c })).reverse());
      asks.setData(askLevels.map(([p, c]) => ({ time: Number(p), value: c })));
      chart.timeScale().fitContent();
    },
    remove() { chart.remove(); },
  };
}
