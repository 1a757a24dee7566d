import { useEffect, useState } from 'preact/hooks';
import type { Device, TimelineEvent } from '../api.js';
import { CANCELLABLE } from '../api.js';
import { useApp } from '../app.js';
import { Link } from '../components/Link.js';
import { StateBadge } from '../components/States.js';
import { STATE_WORDS, describeError, formatTime } from '../wording.js';

type Detail = { device: Device; ownerEmail: string; timeline: TimelineEvent[] };

/** A device for the operator: its state, its contract and owner, its audit timeline, and revoke. */
export function DevicePage(props: { dsimId: string }) {
  const { api, live } = useApp();
  const [detail, setDetail] = useState<Detail | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [confirming, setConfirming] = useState(false);
  const [message, setMessage] = useState<string | null>(null);

  const load = () =>
    api
      .deviceTimeline(props.dsimId)
      .then(setDetail)
      .catch((err: unknown) => setError(describeError(err)));

  useEffect(() => {
    setDetail(null);
    setError(null);
    void load();
    // A pushed state change brings a new timeline entry: read the timeline again.
    return live.on('device', (d) => {
      if (d.dsimId === props.dsimId) void load();
    });
  }, [props.dsimId]);

  async function revoke(device: Device) {
    setConfirming(false);
    try {
      await api.cancelDevice(device.contractId, device.dsimId);
      setMessage(`${device.dsimId} is revoked.`);
      await load();
    } catch (err) {
      setMessage(`${device.dsimId} could not be revoked: ${describeError(err)}`);
    }
  }

  return (
    <section aria-labelledby="device-title">
      <h1 id="device-title">
        Device <span class="mono">{props.dsimId}</span>
      </h1>
      {error && (
        <p class="alert alert--error" role="alert">
          {error}
        </p>
      )}
      {!detail && !error && <p>Loading the device…</p>}
      {detail && (
        <>
          <dl class="facts">
            <dt>State</dt>
            <dd>
              <StateBadge state={detail.device.state} />{' '}
              {detail.device.reason ?? STATE_WORDS[detail.device.state]}
            </dd>
            <dt>Contract</dt>
            <dd>
              <Link href={`/contracts/${detail.device.contractId}`}>{detail.device.contractId}</Link> (
              {detail.ownerEmail})
            </dd>
            <dt>IMSI</dt>
            <dd class="mono">{detail.device.imsi ?? 'not allocated yet'}</dd>
            <dt>Last change</dt>
            <dd>{formatTime(detail.device.updatedAt)}</dd>
          </dl>
          <p class="status" role="status">
            {message}
          </p>
          {detail.device.state !== 'revoked' && (
            <div class="danger-zone">
              {!confirming ? (
                <button type="button" class="button button--danger" onClick={() => setConfirming(true)}>
                  Revoke this device
                </button>
              ) : (
                <div role="group" aria-labelledby="revoke-question">
                  <p id="revoke-question">
                    Revoke {detail.device.dsimId}?{' '}
                    {CANCELLABLE.has(detail.device.state)
                      ? 'Its registration is withdrawn and it cannot download credentials.'
                      : 'It already has credentials; the server decides whether they can still be withdrawn.'}
                  </p>
                  <button
                    type="button"
                    class="button button--danger"
                    onClick={() => void revoke(detail.device)}
                  >
                    Yes, revoke
                  </button>{' '}
                  <button type="button" class="button" onClick={() => setConfirming(false)}>
                    Keep it
                  </button>
                </div>
              )}
            </div>
          )}
          <h2 id="timeline-title">Timeline</h2>
          {detail.timeline.length === 0 ? (
            <p>No event recorded yet.</p>
          ) : (
            <table class="table table--stack timeline" aria-labelledby="timeline-title">
              <thead>
                <tr>
                  <th scope="col">Time</th>
                  <th scope="col">Role</th>
                  <th scope="col">Event</th>
                  <th scope="col">Detail</th>
                </tr>
              </thead>
              <tbody>
                {detail.timeline.map((t, i) => (
                  <tr key={i}>
                    <td data-label="Time">{formatTime(t.at)}</td>
                    <td data-label="Role">{t.role}</td>
                    <td data-label="Event">{t.event}</td>
                    <td data-label="Detail">{t.detail ?? '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
    </section>
  );
}
