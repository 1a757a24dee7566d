import { BarController, BarElement, CategoryScale, Chart, LinearScale, Tooltip } from 'chart.js';
import { useEffect, useRef } from 'preact/hooks';
import type { DeviceState, Funnel } from '../api.js';
import { DEVICE_STATES } from '../api.js';
import { STATE_WORDS, formatCount, formatTime } from '../wording.js';

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Tooltip);

/** Bar colours: the way to `attached` in blues and green, the ends that are not success in warm colours. */
const COLOURS: Record<DeviceState, string> = {
  pending: '#9aa5b1',
  registered: '#7b93db',
  authenticated: '#5c7cfa',
  referred: '#4263eb',
  delivered: '#1c7ed6',
  completed: '#1098ad',
  attached: '#2b8a3e',
  failed: '#c92a2a',
  expired: '#e67700',
  revoked: '#862e9c',
  rejected: '#a61e4d',
  suspended: '#f08c00',
  active: '#37b24d',
  deleted: '#495057',
  reprovisioned: '#3b5bdb',
  transferring: '#74c0fc',
  transferred: '#868e96',
};

/**
 * The fleet funnel: devices per state over every contract, drawn by Chart.js and updated in place
 * when a `funnel` event arrives (no animation, so a busy fleet does not keep the chart moving). The
 * same numbers are in the table beside it for screen readers and for copying.
 */
export function FleetFunnel(props: { funnel: Funnel }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const chart = useRef<Chart<'bar'> | null>(null);
  const counts = DEVICE_STATES.map((s) => props.funnel.totals[s] ?? 0);

  useEffect(() => {
    if (!canvas.current) return;
    chart.current = new Chart(canvas.current, {
      type: 'bar',
      data: {
        labels: [...DEVICE_STATES],
        datasets: [{ label: 'devices', data: counts, backgroundColor: DEVICE_STATES.map((s) => COLOURS[s]) }],
      },
      options: {
        indexAxis: 'y',
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        plugins: { legend: { display: false } },
        scales: {
          x: { beginAtZero: true, ticks: { precision: 0 } },
          // Every state named, also on a narrow screen (Chart.js would drop every other label).
          y: { ticks: { autoSkip: false } },
        },
      },
    });
    return () => {
      chart.current?.destroy();
      chart.current = null;
    };
  }, []);

  useEffect(() => {
    const c = chart.current;
    if (!c?.data.datasets[0]) return;
    c.data.datasets[0].data = counts;
    c.update('none');
  }, [counts.join(',')]);

  return (
    <div class="funnel">
      <p class="summary">
        {formatCount(props.funnel.devices)} {props.funnel.devices === 1 ? 'device' : 'devices'} in{' '}
        {formatCount(props.funnel.contracts)} {props.funnel.contracts === 1 ? 'contract' : 'contracts'}, as of{' '}
        {formatTime(props.funnel.at)}.
      </p>
      <div class="funnel__chart">
        <canvas
          ref={canvas}
          role="img"
          aria-label={`Devices per state: ${DEVICE_STATES.map((s, i) => `${s} ${counts[i]}`).join(', ')}`}
        />
      </div>
      <table class="table funnel__table">
        <caption>Devices per state</caption>
        <thead>
          <tr>
            <th scope="col">State</th>
            <th scope="col">Devices</th>
          </tr>
        </thead>
        <tbody>
          {DEVICE_STATES.map((s, i) => (
            <tr key={s} data-state={s}>
              <th scope="row" title={STATE_WORDS[s]}>
                {s}
              </th>
              <td class="num">{formatCount(counts[i] ?? 0)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
