import type { DeviceState, StateTotals } from '../api.js';
import { DEVICE_STATES } from '../api.js';
import { STATE_WORDS, formatCount } from '../wording.js';

export function StateBadge(props: { state: DeviceState }) {
  return (
    <span class={`badge badge--${props.state}`} title={STATE_WORDS[props.state]}>
      {props.state}
    </span>
  );
}

/** Devices per state, every state shown (0 when none), with what the state means. */
export function StateTotalsList(props: { totals: StateTotals; label: string }) {
  return (
    <ul class="totals" aria-label={props.label}>
      {DEVICE_STATES.map((state) => (
        <li key={state} class={`totals__item totals__item--${state}`}>
          <span class="totals__count">{formatCount(props.totals[state] ?? 0)}</span>
          <span class="totals__state">{state}</span>
          <span class="totals__words">{STATE_WORDS[state]}</span>
        </li>
      ))}
    </ul>
  );
}
