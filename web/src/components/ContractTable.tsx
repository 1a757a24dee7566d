import type { Contract } from '../api.js';
import { formatCount, formatTime } from '../wording.js';
import { Link } from './Link.js';

/** Contracts as rows; on narrow screens each row becomes a card (labels from data-label). */
export function ContractTable(props: { contracts: Contract[]; caption: string; showOwner?: boolean }) {
  return (
    <table class="table table--stack">
      <caption>{props.caption}</caption>
      <thead>
        <tr>
          <th scope="col">Contract</th>
          {props.showOwner && <th scope="col">Owner</th>}
          <th scope="col">Plan</th>
          <th scope="col">Signed</th>
          <th scope="col">Payment</th>
          <th scope="col">Devices</th>
          <th scope="col">On the network</th>
          <th scope="col">Problems</th>
        </tr>
      </thead>
      <tbody>
        {props.contracts.map((c) => (
          <tr key={c.id}>
            <th scope="row" data-label="Contract">
              <Link href={`/contracts/${c.id}`}>{c.id}</Link>
            </th>
            {props.showOwner && <td data-label="Owner">{c.ownerEmail}</td>}
            <td data-label="Plan">{c.planId}</td>
            <td data-label="Signed">{formatTime(c.createdAt)}</td>
            <td data-label="Payment">
              <span class={`badge badge--payment-${c.payment.status}`}>{c.payment.status}</span>
            </td>
            <td data-label="Devices">{formatCount(c.devices)}</td>
            <td data-label="On the network">{formatCount(c.totals.attached ?? 0)}</td>
            <td data-label="Problems">
              {formatCount((c.totals.failed ?? 0) + (c.totals.expired ?? 0) + (c.totals.rejected ?? 0))}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
