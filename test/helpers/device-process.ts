// `node device-process.js PKI_DIR DSIM_ID`: one simulated device in a process of its own, its trusted
// module persisting in its factory-image folder, checking in once (DeviceAgent.checkIn: onboard,
// or onboard again when re-provisioned, else nothing) and attaching. Prints one JSON line:
// {"outcome":"onboarded"|"up-to-date","imsi":…} or {"error":{"code","message"}}.
//
// With KILL_AT_MODULE_INSTALL=1 the process SIGKILLs itself at the moment its module would replace
// module.json with a newly installed credential (the sealed file written, not yet renamed into
// place): a device that dies mid-install, as a real power cut would take it. (Not a SIMCRED_
// variable: those are config overrides.)
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { basename } from 'node:path';

if (process.env.KILL_AT_MODULE_INSTALL === '1') {
  const rename = fs.renameSync;
  fs.renameSync = (from: fs.PathLike, to: fs.PathLike) => {
    if (basename(String(to)) === 'module.json') process.kill(process.pid, 'SIGKILL');
    rename(from, to);
  };
  // The modules below import renameSync by name: their bindings follow the patched export.
  syncBuiltinESMExports();
}

const [pkiDir, dsimId] = process.argv.slice(2);
const { loadFactoryImage } = await import('../../src/pki/index.js');
const { DeviceAgent } = await import('../../src/device/agent.js');
const { PeerClient } = await import('../../src/http/index.js');
const { isSimcredError } = await import('../../src/errors/index.js');

const image = await loadFactoryImage(pkiDir!, dsimId!);
const client = new PeerClient({ tls: { ca: [image.image.trustRoots.operator] } });
try {
  const agent = DeviceAgent.fromFactoryImage(image, { client, maxAttempts: 3, maxRetryDelayMs: 1000 });
  const outcome = await agent.checkIn();
  if (outcome === 'up-to-date') {
    await agent.attach();
    process.stdout.write(`${JSON.stringify({ outcome })}\n`);
  } else {
    process.stdout.write(`${JSON.stringify({ outcome: 'onboarded', imsi: outcome.subscription.imsi })}\n`);
  }
} catch (err) {
  const error = isSimcredError(err)
    ? { code: err.code, message: err.message }
    : { code: 'SIMCRED_INTERNAL', message: String(err) };
  process.stdout.write(`${JSON.stringify({ error })}\n`);
  process.exitCode = 1;
} finally {
  await client.close();
}
