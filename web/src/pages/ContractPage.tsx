import { useEffect, useRef, useState } from 'preact/hooks';
import type { Contract, Device, DeviceState, Rejection, Upload } from '../api.js';
import { ApiError, CANCELLABLE, DEVICE_STATES } from '../api.js';
import { useApp } from '../app.js';
import { FieldError, FormAlert, TextAreaField, TextField } from '../components/Field.js';
import { Link } from '../components/Link.js';
import { Cursors, Pager } from '../components/Pager.js';
import { StateBadge, StateTotalsList } from '../components/States.js';
import { RejectionList, UploadProgress, UploadReport, countRows } from '../components/UploadReport.js';
import { fieldId, useFormState } from '../form.js';
import { STATE_WORDS, TEST_PAYMENT_HINT, describeError, formatCount, formatTime } from '../wording.js';

const PAGE_SIZE = 50;

/** One contract: totals, payment, adding devices (typed or by file) and the live device list. */
export function ContractPage(props: { contractId: string }) {
  const { api, live, session } = useApp();
  const isOwner = session?.account.kind === 'owner';
  const [contract, setContract] = useState<Contract | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [devicesVersion, setDevicesVersion] = useState(0);

  const reload = () =>
    api
      .getContract(props.contractId)
      .then(setContract)
      .catch((err: unknown) => setError(describeError(err)));

  useEffect(() => {
    setContract(null);
    setError(null);
    void reload();
  }, [props.contractId]);

  // Totals follow the pushed device events; one refresh a second at most, however many arrive.
  const refreshTimer = useRef<number | null>(null);
  useEffect(() => {
    const off = live.on('device', (device) => {
      if (device.contractId !== props.contractId || refreshTimer.current !== null) return;
      refreshTimer.current = window.setTimeout(() => {
        refreshTimer.current = null;
        void reload();
      }, 1000);
    });
    return () => {
      off();
      if (refreshTimer.current !== null) window.clearTimeout(refreshTimer.current);
      refreshTimer.current = null;
    };
  }, [live, props.contractId]);

  if (error) {
    return (
      <section aria-labelledby="contract-title">
        <h1 id="contract-title">Contract {props.contractId}</h1>
        <p class="alert alert--error" role="alert">
          {error}
        </p>
        <Link href={isOwner ? '/contracts' : '/console'}>Back to the contracts</Link>
      </section>
    );
  }
  if (!contract) return <p aria-live="polite">Loading the contract…</p>;

  const declined = contract.payment.status === 'declined';
  const changed = (c?: Contract) => {
    if (c) setContract(c);
    else void reload();
    setDevicesVersion((v) => v + 1);
  };
  return (
    <section aria-labelledby="contract-title">
      <div class="page-head">
        <h1 id="contract-title">
          Contract <span class="mono">{contract.id}</span>
        </h1>
      </div>
      <p class="summary">
        Plan <strong>{contract.planId}</strong> · signed {formatTime(contract.createdAt)}
        {!isOwner && <> · owner {contract.ownerEmail}</>} · billed to {contract.billing.name} ·{' '}
        {formatCount(contract.devices)} devices
      </p>
      {declined && <DeclinedBanner contract={contract} canRetry={isOwner} onPaid={changed} />}

      <h2>Devices by state</h2>
      <StateTotalsList totals={contract.totals} label={`Devices of contract ${contract.id} by state`} />

      {isOwner && (
        <div class="columns">
          <AddDevices contract={contract} blocked={declined} onAdded={() => changed()} />
          <UploadDevices contract={contract} blocked={declined} onDone={() => changed()} />
        </div>
      )}
      <DeviceList contract={contract} version={devicesVersion} onCancelled={() => changed()} />
    </section>
  );
}

function DeclinedBanner(props: { contract: Contract; canRetry: boolean; onPaid(c: Contract): void }) {
  const { api } = useApp();
  const form = useFormState('payment', ['paymentReference']);
  const [reference, setReference] = useState('');
  return (
    <div class="banner banner--error" role="alert" aria-labelledby="declined-title">
      <h2 id="declined-title">Payment declined: no device can be added</h2>
      <p>
        The payment with reference <span class="mono">{props.contract.payment.reference}</span> was declined
        {props.contract.payment.reason ? ` (${props.contract.payment.reason})` : ''}. Devices are registered
        once a payment is authorised.
      </p>
      {props.canRetry && (
        <form
          class="inline-form"
          noValidate
          onSubmit={(event) => {
            event.preventDefault();
            void form.submit(async () => props.onPaid(await api.retryPayment(props.contract.id, reference)));
          }}
        >
          <FormAlert error={form.error} />
          <TextField
            id={fieldId('payment', 'paymentReference')}
            label="New payment reference"
            hint={TEST_PAYMENT_HINT}
            required
            value={reference}
            onInput={(e) => setReference(e.currentTarget.value)}
            error={form.fieldErrors.paymentReference}
          />
          <button type="submit" class="button button--primary" disabled={form.busy}>
            {form.busy ? 'Authorising…' : 'Retry the payment'}
          </button>
        </form>
      )}
    </div>
  );
}

function AddDevices(props: { contract: Contract; blocked: boolean; onAdded(): void }) {
  const { api } = useApp();
  const form = useFormState('add', ['dsimIds']);
  const [text, setText] = useState('');
  const [result, setResult] = useState<{ accepted: number; rejected: Rejection[] } | null>(null);
  return (
    <form
      class="card"
      aria-labelledby="add-title"
      noValidate
      onSubmit={(event) => {
        event.preventDefault();
        setResult(null);
        void form.submit(async () => {
          const ids = text.split(/[\s,;]+/).filter(Boolean);
          if (ids.length === 0) throw new ApiError(0, 'NO_DEVICE', 'body.dsimIds: type at least one DSIM_ID');
          const total = { accepted: 0, rejected: [] as Rejection[] };
          // The route takes 100 at a time; a longer list goes in several requests.
          for (let i = 0; i < Math.max(ids.length, 1); i += 100) {
            const answer = await api.addDevices(props.contract.id, ids.slice(i, i + 100));
            total.accepted += answer.accepted.length;
            total.rejected.push(...answer.rejected);
          }
          setResult(total);
          if (total.rejected.length === 0) setText('');
          props.onAdded();
        });
      }}
    >
      <h2 id="add-title">Add devices</h2>
      <FormAlert error={form.error}>
        {result && (
          <p class="alert alert--ok">
            {formatCount(result.accepted)} device{result.accepted === 1 ? '' : 's'} added and being registered
            {result.rejected.length > 0 ? `; ${formatCount(result.rejected.length)} refused (below).` : '.'}
          </p>
        )}
      </FormAlert>
      <TextAreaField
        id={fieldId('add', 'dsimIds')}
        label="DSIM_IDs, one per line"
        hint="Each is DSIM followed by 16 hexadecimal digits, as printed on the device. Up to 100 at a time is quickest."
        rows={5}
        class="mono"
        spellcheck={false}
        value={text}
        onInput={(e) => setText(e.currentTarget.value)}
        error={form.fieldErrors.dsimIds}
        disabled={props.blocked}
      />
      {result && <RejectionList rejected={result.rejected} total={result.rejected.length} idPrefix="typed" />}
      <button type="submit" class="button button--primary" disabled={form.busy || props.blocked}>
        {form.busy ? 'Adding…' : 'Add these devices'}
      </button>
    </form>
  );
}

function UploadDevices(props: { contract: Contract; blocked: boolean; onDone(): void }) {
  const { api, live } = useApp();
  const form = useFormState('upload', ['file']);
  const fileInput = useRef<HTMLInputElement>(null);
  const [running, setRunning] = useState<{
    fileName: string;
    totalRows: number | null;
    upload: Upload | null;
  } | null>(null);
  const [report, setReport] = useState<Upload | null>(null);

  // Progress arrives as `upload` events; ours is the running upload of this contract and file name.
  useEffect(
    () =>
      live.on('upload', (upload) => {
        setRunning((r) =>
          r &&
          upload.contractId === props.contract.id &&
          upload.fileName === r.fileName &&
          upload.state === 'running'
            ? { ...r, upload }
            : r,
        );
      }),
    [live, props.contract.id],
  );

  return (
    <form
      class="card"
      aria-labelledby="upload-title"
      noValidate
      onSubmit={(event) => {
        event.preventDefault();
        const file = fileInput.current?.files?.[0];
        setReport(null);
        void form.submit(async () => {
          if (!file) throw new ApiError(0, 'NO_FILE', 'body.file: choose a file to upload');
          setRunning({ fileName: file.name, totalRows: null, upload: null });
          const csv = !/\.(nd)?jsonl?$/i.test(file.name);
          void countRows(file, csv).then((n) => setRunning((r) => (r ? { ...r, totalRows: n } : r)));
          try {
            setReport(await api.uploadDevices(props.contract.id, file));
          } finally {
            setRunning(null);
          }
          if (fileInput.current) fileInput.current.value = '';
          props.onDone();
        });
      }}
    >
      <h2 id="upload-title">Upload a device list</h2>
      <FormAlert error={form.error} />
      <div class={form.fieldErrors.file ? 'field field--invalid' : 'field'}>
        <label for="upload-file">CSV or NDJSON file</label>
        <p class="hint" id="upload-file-hint">
          CSV with a <span class="mono">dsim_id</span> column in its header row, or NDJSON with one{' '}
          <span class="mono">{'{"dsimId": "…"}'}</span> per line. Any size: good rows are registered, bad rows
          are listed with their line number.
        </p>
        <input
          id="upload-file"
          ref={fileInput}
          type="file"
          accept=".csv,.ndjson,.jsonl,text/csv,application/x-ndjson"
          aria-describedby="upload-file-hint upload-file-error"
          aria-invalid={form.fieldErrors.file ? 'true' : undefined}
          disabled={props.blocked || running !== null}
        />
        <FieldError id="upload-file-error" error={form.fieldErrors.file} />
      </div>
      {running && (
        <UploadProgress upload={running.upload} totalRows={running.totalRows} fileName={running.fileName} />
      )}
      {report && <UploadReport upload={report} />}
      <button type="submit" class="button button--primary" disabled={form.busy || props.blocked}>
        {form.busy ? 'Uploading…' : 'Upload the file'}
      </button>
    </form>
  );
}

function DeviceList(props: { contract: Contract; version: number; onCancelled(): void }) {
  const { api, live, session } = useApp();
  const isOperator = session?.account.kind === 'operator';
  const [cursors, setCursors] = useState(new Cursors());
  const [state, setState] = useState<DeviceState | ''>('');
  const [page, setPage] = useState<{ items: Device[]; next: string | null } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);

  useEffect(() => {
    let current = true;
    api
      .listDevices(props.contract.id, { after: cursors.current, limit: PAGE_SIZE, state: state || undefined })
      .then((p) => current && setPage(p))
      .catch((err: unknown) => current && setError(describeError(err)));
    return () => {
      current = false;
    };
  }, [api, props.contract.id, cursors, state, props.version]);

  // A pushed device replaces its row in place; rows of other pages are fetched when that page opens.
  useEffect(
    () =>
      live.on('device', (device) =>
        setPage((p) =>
          p && p.items.some((d) => d.dsimId === device.dsimId)
            ? { ...p, items: p.items.map((d) => (d.dsimId === device.dsimId ? device : d)) }
            : p,
        ),
      ),
    [live],
  );

  async function cancel(device: Device) {
    setMessage(null);
    try {
      const updated = await api.cancelDevice(device.contractId, device.dsimId);
      setPage((p) => p && { ...p, items: p.items.map((d) => (d.dsimId === updated.dsimId ? updated : d)) });
      setMessage(`${device.dsimId} is cancelled.`);
      props.onCancelled();
    } catch (err) {
      setMessage(`${device.dsimId} could not be cancelled: ${describeError(err)}`);
    }
  }

  return (
    <div class="devices">
      <h2 id="devices-title">Devices</h2>
      <div class="field field--inline">
        <label for="device-state-filter">Show</label>
        <select
          id="device-state-filter"
          value={state}
          onChange={(e) => {
            setState(e.currentTarget.value as DeviceState | '');
            setCursors(new Cursors());
          }}
        >
          <option value="">every state</option>
          {DEVICE_STATES.map((s) => (
            <option key={s} value={s}>
              {s}: {STATE_WORDS[s]}
            </option>
          ))}
        </select>
      </div>
      <p class="status" role="status">
        {message}
      </p>
      {error && (
        <p class="alert alert--error" role="alert">
          {error}
        </p>
      )}
      {page && page.items.length === 0 && <p>No device {state ? `in state ${state}` : 'yet'}.</p>}
      {page && page.items.length > 0 && (
        <table class="table table--stack" aria-labelledby="devices-title">
          <thead>
            <tr>
              <th scope="col">DSIM_ID</th>
              <th scope="col">State</th>
              <th scope="col">IMSI</th>
              <th scope="col">Updated</th>
              <th scope="col">Details</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {page.items.map((d) => (
              <tr key={d.dsimId}>
                <th scope="row" data-label="DSIM_ID" class="mono">
                  {isOperator ? <Link href={`/console/devices/${d.dsimId}`}>{d.dsimId}</Link> : d.dsimId}
                </th>
                <td data-label="State">
                  <StateBadge state={d.state} />
                </td>
                <td data-label="IMSI" class="mono">
                  {d.imsi ?? '—'}
                </td>
                <td data-label="Updated">{formatTime(d.updatedAt)}</td>
                <td data-label="Details">{d.reason ?? STATE_WORDS[d.state]}</td>
                <td data-label="Actions">
                  {CANCELLABLE.has(d.state) && (
                    <button
                      type="button"
                      class="button button--small button--danger"
                      aria-label={`Cancel device ${d.dsimId}`}
                      onClick={() => void cancel(d)}
                    >
                      Cancel
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {page && (
        <Pager
          label="Device pages"
          hasPrevious={cursors.hasPrevious}
          hasNext={page.next !== null}
          onPrevious={() => setCursors(cursors.previous())}
          onNext={() => page.next && setCursors(cursors.next(page.next))}
        />
      )}
    </div>
  );
}
