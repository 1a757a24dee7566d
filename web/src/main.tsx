import { render } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { PortalApi } from './api.js';
import type { Session } from './api.js';
import { AppContext, useApp } from './app.js';
import type { AppServices } from './app.js';
import { Link } from './components/Link.js';
import { Console } from './pages/Console.js';
import { ContractForm } from './pages/ContractForm.js';
import { ContractList } from './pages/ContractList.js';
import { ContractPage } from './pages/ContractPage.js';
import { DevicePage } from './pages/DevicePage.js';
import { LogIn } from './pages/LogIn.js';
import { SignUp } from './pages/SignUp.js';
import { LiveUpdates } from './stream.js';
import './styles.css';

const CONTRACT_ID = '(C[0-9A-HJKMNP-TV-Z]{12})';
const DSIM_ID = '(DSIM[0-9A-F]{16})';

interface Location {
  path: string;
  query: URLSearchParams;
}
const here = (): Location => ({ path: location.pathname, query: new URLSearchParams(location.search) });

/** Which page a path shows, and for whom; history routing (the portal serves index.html for any page path). */
function Page(props: { where: Location }) {
  const { session, navigate } = useApp();
  const { path, query } = props.where;
  const kind = session?.account.kind;
  const publicPage = path === '/login' || path === '/signup';

  useEffect(() => {
    if (!session && !publicPage) navigate('/login', { replace: true });
    else if (session && (publicPage || path === '/'))
      navigate(kind === 'operator' ? '/console' : '/contracts', { replace: true });
  }, [session, path]);

  if (path === '/login') return session ? null : <LogIn />;
  if (path === '/signup') return session ? null : <SignUp />;
  if (!session) return null;
  let m: RegExpExecArray | null;
  if (kind === 'owner' && path === '/contracts') return <ContractList />;
  if (kind === 'owner' && path === '/contracts/new') return <ContractForm />;
  if ((m = new RegExp(`^/contracts/${CONTRACT_ID}$`).exec(path)) && m[1])
    return <ContractPage contractId={m[1]} />;
  if (kind === 'operator' && path === '/console') return <Console query={query.get('q') ?? ''} />;
  if (kind === 'operator' && (m = new RegExp(`^/console/devices/${DSIM_ID}$`).exec(path)) && m[1])
    return <DevicePage dsimId={m[1]} />;
  if (path === '/') return null;
  return (
    <section aria-labelledby="missing-title">
      <h1 id="missing-title">Page not found</h1>
      <p>
        There is no page at this address. <Link href="/">Go to the start page</Link>.
      </p>
    </section>
  );
}

function Header(props: { connected: boolean }) {
  const { api, session, setSession, navigate } = useApp();
  const owner = session?.account.kind === 'owner';
  return (
    <header class="site-header">
      <div class="site-header__inner">
        <Link href="/" class="brand">
          <span class="brand__mark" aria-hidden="true">
            ◆
          </span>{' '}
          simcred <span class="brand__sub">portal</span>
        </Link>
        {session && (
          <nav aria-label="Main" class="site-nav">
            {owner ? (
              <>
                <Link href="/contracts">Contracts</Link>
                <Link href="/contracts/new">New contract</Link>
              </>
            ) : (
              <Link href="/console">Console</Link>
            )}
            <span class="site-nav__who">
              {session.account.name}
              <span class={props.connected ? 'live live--on' : 'live'}>
                {props.connected ? 'live' : 'reconnecting'}
              </span>
            </span>
            <button
              type="button"
              class="button button--small"
              onClick={() => {
                void api
                  .logOut()
                  .catch(() => undefined) // an expired session is logged out all the same
                  .then(() => {
                    setSession(null);
                    navigate('/login', { replace: true });
                  });
              }}
            >
              Log out
            </button>
          </nav>
        )}
      </div>
    </header>
  );
}

function App() {
  const api = useMemo(() => new PortalApi(), []);
  const live = useMemo(() => new LiveUpdates(), []);
  const [where, setWhere] = useState(here);
  const [session, setSession] = useState<Session | null>(null);
  const [checked, setChecked] = useState(false);
  const [connected, setConnected] = useState(false);

  useEffect(() => {
    const onPop = () => setWhere(here());
    window.addEventListener('popstate', onPop);
    live.onStatus = setConnected;
    api.onSessionLost = () => setSession(null); // the page then sends the visitor to the log-in page
    api
      .currentSession()
      .then(setSession)
      .catch(() => setSession(null))
      .finally(() => setChecked(true));
    return () => window.removeEventListener('popstate', onPop);
  }, []);

  useEffect(() => {
    if (session) live.open();
    else {
      live.close();
      setConnected(false);
    }
  }, [session]);

  // A new page: its title for the tab and screen readers, and the focus at its top.
  useEffect(() => {
    const h1 = document.querySelector('main h1');
    document.title = h1?.textContent ? `${h1.textContent} · simcred portal` : 'simcred portal';
  });

  const services: AppServices = {
    api,
    live,
    session,
    setSession,
    navigate(path, options) {
      if (options?.replace) history.replaceState(null, '', path);
      else history.pushState(null, '', path);
      setWhere(here());
      document.getElementById('main')?.focus({ preventScroll: false });
    },
  };
  return (
    <AppContext.Provider value={services}>
      <a href="#main" class="skip-link">
        Skip to the content
      </a>
      <Header connected={connected} />
      <main id="main" tabIndex={-1}>
        {checked ? <Page where={where} /> : <p>Loading…</p>}
      </main>
      <footer class="site-footer">
        <p>simcred contract portal · devices get their credentials over the air</p>
      </footer>
    </AppContext.Provider>
  );
}

const root = document.getElementById('app');
if (root) render(<App />, root);
