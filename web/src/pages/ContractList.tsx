import { useEffect, useState } from 'preact/hooks';
import type { Contract } from '../api.js';
import { useApp } from '../app.js';
import { ContractTable } from '../components/ContractTable.js';
import { Link } from '../components/Link.js';
import { Cursors, Pager } from '../components/Pager.js';
import { describeError, formatCount } from '../wording.js';

/** The owner's contracts with their totals. */
export function ContractList() {
  const { api } = useApp();
  const [cursors, setCursors] = useState(new Cursors());
  const [page, setPage] = useState<{ items: Contract[]; next: string | null } | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let live = true;
    api
      .listContracts({ after: cursors.current, limit: 50 })
      .then((p) => live && setPage(p))
      .catch((err: unknown) => live && setError(describeError(err)));
    return () => {
      live = false;
    };
  }, [api, cursors]);

  const devices = page?.items.reduce((n, c) => n + c.devices, 0) ?? 0;
  const attached = page?.items.reduce((n, c) => n + (c.totals.attached ?? 0), 0) ?? 0;
  return (
    <section aria-labelledby="contracts-title">
      <div class="page-head">
        <h1 id="contracts-title">Your contracts</h1>
        <Link href="/contracts/new" class="button button--primary">
          New contract
        </Link>
      </div>
      {error && (
        <p class="alert alert--error" role="alert">
          {error}
        </p>
      )}
      {!page && !error && <p aria-live="polite">Loading your contracts…</p>}
      {page && page.items.length === 0 && (
        <div class="card empty">
          <p>You have no contract yet. Sign one to register your first devices.</p>
          <Link href="/contracts/new" class="button button--primary">
            Sign a contract
          </Link>
        </div>
      )}
      {page && page.items.length > 0 && (
        <>
          <p class="summary">
            {formatCount(page.items.length)} contract{page.items.length === 1 ? '' : 's'} on this page,{' '}
            {formatCount(devices)} devices, {formatCount(attached)} on the network.
          </p>
          <ContractTable contracts={page.items} caption="Contracts and their devices" />
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
