import { useEffect, useState } from 'preact/hooks';
import type { Contract, Funnel, Upload } from '../api.js';
import { useApp } from '../app.js';
import { ContractTable } from '../components/ContractTable.js';
import { FleetFunnel } from '../components/FleetFunnel.js';
import { Link } from '../components/Link.js';
import { Cursors, Pager } from '../components/Pager.js';
import { describeError, formatCount, formatTime } from '../wording.js';

const DSIM_ID = /^DSIM[0-9A-F]{16}$/;

/** The operator console: the fleet funnel, uploads in progress, and every contract with a search. */
export function Console(props: { query: string }) {
  return (
    <>
      <h1>Operator console</h1>
      <div class="columns columns--wide-left">
        <section aria-labelledby="funnel-title" class="card">
          <h2 id="funnel-title">Fleet funnel</h2>
          <LiveFunnel />
        </section>
        <section aria-labelledby="uploads-title" class="card">
          <h2 id="uploads-title">Uploads</h2>
          <UploadList />
        </section>
      </div>
      <ContractSearch query={props.query} />
    </>
  );
}

function LiveFunnel() {
  const { api, live } = useApp();
  const [funnel, setFunnel] = useState<Funnel | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    // Subscribe first, so no push between the first read and the subscription is lost.
    const off = live.on('funnel', (f) => setFunnel((old) => (old && old.at > f.at ? old : f)));
    api
      .fleetFunnel()
      .then((f) => setFunnel((old) => old ?? f))
      .catch((err: unknown) => setError(describeError(err)));
    return off;
  }, [api, live]);
  if (error) return <p class="alert alert--error">{error}</p>;
  if (!funnel) return <p>Loading the funnel…</p>;
  return <FleetFunnel funnel={funnel} />;
}

function UploadList() {
  const { api, live } = useApp();
  const [uploads, setUploads] = useState<Upload[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    const off = live.on('upload', (u) =>
      setUploads((list) => {
        const rest = (list ?? []).filter((x) => x.id !== u.id);
        return [u, ...rest].sort((a, b) => (a.startedAt < b.startedAt ? 1 : -1)).slice(0, 20);
      }),
    );
    api
      .listUploads({ limit: 20 })
      .then((page) =>
        setUploads((list) => {
          const pushed = new Map((list ?? []).map((u) => [u.id, u]));
          return page.items.map((u) => pushed.get(u.id) ?? u);
        }),
      )
      .catch((err: unknown) => setError(describeError(err)));
    return off;
  }, [api, live]);
  if (error) return <p class="alert alert--error">{error}</p>;
  if (!uploads) return <p>Loading the uploads…</p>;
  if (uploads.length === 0) return <p>No upload yet.</p>;
  return (
    <ul class="uploads">
      {uploads.map((u) => (
        <li key={u.id} class={`upload upload--${u.state}`}>
          <p class="upload__title">
            <span class="mono">{u.fileName ?? u.id}</span> for{' '}
            <Link href={`/contracts/${u.contractId}`}>{u.contractId}</Link>
          </p>
          <label for={`upload-${u.id}`} class="upload__status">
            {u.state === 'running' ? 'Running' : u.state === 'done' ? 'Finished' : 'Failed'}:{' '}
            {formatCount(u.rows)} rows, {formatCount(u.accepted)} accepted, {formatCount(u.rejectedCount)}{' '}
            rejected
          </label>
          {u.state === 'running' ? (
            <progress id={`upload-${u.id}`} />
          ) : (
            <progress id={`upload-${u.id}`} max={Math.max(u.rows, 1)} value={u.rows} />
          )}
          <p class="upload__time">
            Started {formatTime(u.startedAt)}
            {u.finishedAt ? `, finished ${formatTime(u.finishedAt)}` : ''}
          </p>
        </li>
      ))}
    </ul>
  );
}

function ContractSearch(props: { query: string }) {
  const { api, navigate } = useApp();
  const [input, setInput] = useState(props.query);
  const [cursors, setCursors] = useState(new Cursors());
  const [page, setPage] = useState<{ items: Contract[]; next: string | null } | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    setInput(props.query);
    setCursors(new Cursors());
  }, [props.query]);

  useEffect(() => {
    let current = true;
    setError(null);
    api
      .listContracts({ q: props.query || undefined, after: cursors.current, limit: 50 })
      .then((p) => current && setPage(p))
      .catch((err: unknown) => current && setError(describeError(err)));
    return () => {
      current = false;
    };
  }, [api, props.query, cursors]);

  const dsim = props.query.trim().toUpperCase();
  return (
    <section aria-labelledby="all-contracts-title">
      <h2 id="all-contracts-title">Contracts</h2>
      <form
        role="search"
        class="search"
        onSubmit={(event) => {
          event.preventDefault();
          const q = input.trim();
          navigate(q ? `/console?q=${encodeURIComponent(q)}` : '/console');
        }}
      >
        <label for="contract-search">Search by DSIM_ID, IMSI, contract or owner e-mail</label>
        <div class="search__row">
          <input
            id="contract-search"
            type="search"
            value={input}
            onInput={(e) => setInput(e.currentTarget.value)}
          />
          <button type="submit" class="button">
            Search
          </button>
        </div>
      </form>
      {DSIM_ID.test(dsim) && (
        <p>
          Open the device: <Link href={`/console/devices/${dsim}`}>{dsim}</Link>
        </p>
      )}
      {error && (
        <p class="alert alert--error" role="alert">
          {error}
        </p>
      )}
      <p class="status" role="status">
        {page && (props.query ? `${formatCount(page.items.length)} contracts match “${props.query}”.` : '')}
      </p>
      {page && page.items.length === 0 && <p>No contract found.</p>}
      {page && page.items.length > 0 && (
        <>
          <ContractTable contracts={page.items} caption="Every contract" showOwner />
          <Pager
            label="Contract pages"
            hasPrevious={cursors.hasPrevious}
            hasNext={page.next !== null}
            onPrevious={() => setCursors(cursors.previous())}
            onNext={() => page.next && setCursors(cursors.next(page.next))}
          />
        </>
      )}
    </section>
  );
}
