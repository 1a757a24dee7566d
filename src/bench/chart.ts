import type { E2eResult } from './e2e.js';
import type { RegisterResult } from './register.js';
import type { ScaleResult } from './scale.js';

const WIDTH = 820;
const LABEL = 170;
const BAR_AREA = WIDTH - LABEL - 90;
const COLOURS = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f'];

const esc = (text: string) =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

interface Panel {
  svg: string;
  height: number;
}

/** Horizontal grouped bars: one row per label, one bar per series. */
function barPanel(
  title: string,
  series: string[],
  rows: { label: string; values: number[] }[],
  y: number,
): Panel {
  const max = Math.max(1e-9, ...rows.flatMap((r) => r.values));
  const barH = 9;
  const rowH = series.length * (barH + 1) + 6;
  const parts = [`<text x="10" y="${y + 16}" class="title">${esc(title)}</text>`];
  series.forEach((name, i) => {
    const x = LABEL + i * 110;
    parts.push(
      `<rect x="${x}" y="${y + 24}" width="10" height="10" fill="${COLOURS[i % COLOURS.length]}"/>`,
      `<text x="${x + 14}" y="${y + 33}">${esc(name)}</text>`,
    );
  });
  let top = y + 44;
  for (const row of rows) {
    parts.push(`<text x="${LABEL - 8}" y="${top + rowH / 2}" text-anchor="end">${esc(row.label)}</text>`);
    row.values.forEach((v, i) => {
      const w = Math.max(1, (v / max) * BAR_AREA);
      const by = top + i * (barH + 1);
      parts.push(
        `<rect x="${LABEL}" y="${by}" width="${w.toFixed(1)}" height="${barH}" fill="${COLOURS[i % COLOURS.length]}"/>`,
        `<text x="${(LABEL + w + 4).toFixed(1)}" y="${by + barH - 1}" class="small">${fmt(v)}</text>`,
      );
    });
    top += rowH;
  }
  return { svg: parts.join('\n'), height: top - y + 10 };
}

/** Lines over categorical x (the sizes), each series scaled to its own first point (1 = flat). */
function growthPanel(
  title: string,
  sizes: number[],
  series: { name: string; values: number[] }[],
  y: number,
): Panel {
  const h = 170;
  const left = 60;
  const right = WIDTH - 200;
  const ratios = series.map((s) => s.values.map((v) => v / Math.max(1e-9, s.values[0]!)));
  const max = Math.max(1.5, ...ratios.flat());
  const px = (i: number) => left + (sizes.length < 2 ? 0 : (i / (sizes.length - 1)) * (right - left));
  const py = (r: number) => y + 30 + h - (r / max) * h;
  const parts = [`<text x="10" y="${y + 16}" class="title">${esc(title)}</text>`];
  for (const tick of [0, 0.5, 1, 1.25, 1.5, max].filter((t, i, a) => a.indexOf(t) === i && t <= max)) {
    parts.push(
      `<line x1="${left}" x2="${right}" y1="${py(tick).toFixed(1)}" y2="${py(tick).toFixed(1)}" class="${tick === 1.25 ? 'target' : 'grid'}"/>`,
      `<text x="${left - 6}" y="${(py(tick) + 4).toFixed(1)}" text-anchor="end" class="small">${tick.toFixed(2)}×</text>`,
    );
  }
  sizes.forEach((size, i) =>
    parts.push(
      `<text x="${px(i).toFixed(1)}" y="${y + h + 48}" text-anchor="middle" class="small">${size.toLocaleString('en-US')}</text>`,
    ),
  );
  ratios.forEach((values, s) => {
    const colour = COLOURS[s % COLOURS.length];
    const points = values.map((r, i) => `${px(i).toFixed(1)},${py(r).toFixed(1)}`).join(' ');
    parts.push(`<polyline points="${points}" fill="none" stroke="${colour}" stroke-width="2"/>`);
    values.forEach((r, i) =>
      parts.push(`<circle cx="${px(i).toFixed(1)}" cy="${py(r).toFixed(1)}" r="3" fill="${colour}"/>`),
    );
    parts.push(
      `<rect x="${right + 20}" y="${y + 30 + s * 18}" width="10" height="10" fill="${colour}"/>`,
      `<text x="${right + 34}" y="${y + 39 + s * 18}" class="small">${esc(series[s]!.name)}</text>`,
    );
  });
  return { svg: parts.join('\n'), height: h + 64 };
}

/**
 * The benchmark chart (hand-written SVG, no charting library): per-step latency and CPU against the
 * crypto floor for an e2e run, peak RSS for a register run, growth curves for a scale run.
 *
 * @example
 *   writeFileSync('docs/benchmarks.svg', renderChart({ e2e, register, scale }));
 */
export function renderChart(data: {
  e2e?: E2eResult;
  register?: RegisterResult;
  scale?: ScaleResult;
}): string {
  const panels: string[] = [];
  let y = 10;
  const add = (panel: Panel) => {
    panels.push(panel.svg);
    y += panel.height + 10;
  };
  const e2e = data.e2e ?? data.scale?.runs.e2e[0];
  if (e2e) {
    add(
      barPanel(
        `e2e, ${e2e.devices} devices: ${e2e.onboardingsPerSecond} onboardings/s — latency per step (ms)`,
        ['p50', 'p95', 'p99'],
        e2e.steps.map((s) => ({ label: s.step, values: [s.p50, s.p95, s.p99] })),
        y,
      ),
    );
    add(
      barPanel(
        `server CPU per onboarding (ms): ${e2e.serverCpuMsPerOnboarding} = ${e2e.cpuOverFloor}× the crypto floor`,
        ['cpu ms/onboarding'],
        [
          ...e2e.servers.map((s) => ({ label: s.name, values: [s.cpuMsPerOnboarding] })),
          { label: 'all servers', values: [e2e.serverCpuMsPerOnboarding] },
          { label: 'crypto floor', values: [e2e.floor.serverMs] },
        ],
        y,
      ),
    );
  }
  const register = data.register ?? data.scale?.runs.register.at(-1);
  if (register) {
    add(
      barPanel(
        `register, ${register.devices.toLocaleString('en-US')} devices: ${register.registrationsPerSecond} registrations/s — peak RSS (MiB)`,
        ['VmHWM MiB'],
        Object.entries(register.peakRssMiB).map(([label, v]) => ({ label, values: [v] })),
        y,
      ),
    );
  }
  if (data.scale && data.scale.register.length > 0) {
    add(
      growthPanel(
        'register: per-device time and peak RSS relative to the smallest size (target ≤ 1.25×)',
        data.scale.register.map((p) => p.devices),
        [
          { name: 'µs per device', values: data.scale.register.map((p) => p.perDeviceUs) },
          { name: 'max peak RSS', values: data.scale.register.map((p) => p.maxPeakRssMiB) },
        ],
        y,
      ),
    );
  }
  if (data.scale && data.scale.e2e.length > 0) {
    add(
      growthPanel(
        'e2e: per-onboarding time, server CPU and RSS relative to the smallest size',
        data.scale.e2e.map((p) => p.devices),
        [
          { name: 'µs per onboarding', values: data.scale.e2e.map((p) => p.perDeviceUs) },
          { name: 'server cpu/onboarding', values: data.scale.e2e.map((p) => p.serverCpuMsPerOnboarding) },
          { name: 'max peak RSS', values: data.scale.e2e.map((p) => p.maxPeakRssMiB) },
        ],
        y,
      ),
    );
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y}" viewBox="0 0 ${WIDTH} ${y}" font-family="sans-serif" font-size="11">`,
    '<style>.title{font-size:13px;font-weight:bold}.small{font-size:10px;fill:#333}.grid{stroke:#ddd}.target{stroke:#e15759;stroke-dasharray:4 3}</style>',
    `<rect width="${WIDTH}" height="${y}" fill="#fff"/>`,
    ...panels,
    '</svg>',
    '',
  ].join('\n');
}
