import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type * as x509 from '../crypto/x509.js';
import { SimcredError, isSimcredError } from '../errors/index.js';
import type { PeerClient } from '../http/index.js';
import { AuthorisationDecision, type AuthorisationRequest } from '../protocol/authorisation-hook.js';
import type { z } from 'zod';
import type { Registration } from './store.js';
import type { Clock } from '../time/clock.js';

export interface AuthorisationHookOptions {
  url: string;
  /** The client that calls it: the credentialing server's certificate, the hook's CA trusted. */
  client: PeerClient;
  timeoutMs: number;
  /** Plans the hook may choose; any plan when omitted. */
  plans?: string[];
  log: Logger;
  clock: Clock;
}

/** What the hook allowed: the plan it chose, if any. */
export interface Authorisation {
  plan: string | null;
}

/** How long a device refused because the hook failed is told to wait. */
const RETRY_AFTER_SECONDS = 5;

/**
 * Step 4's last check, when the operator configured a hook: asks it whether this device may have a
 * credential (and under which plan). Fails closed: a deny is SIMCRED_AUTHORISATION_DENIED (403); a
 * timeout, a connection error, another status than 200 or an answer that is not the declared JSON is
 * SIMCRED_AUTHORISATION_UNAVAILABLE (503, Retry-After) — the device is never let through because
 * the hook could not answer.
 *
 * @example
 *   const { plan } = await hook.authorise(registration, leafCertificate);
 */
export class AuthorisationHook {
  constructor(private readonly options: AuthorisationHookOptions) {}

  async authorise(registration: Registration, certificate: x509.X509Certificate): Promise<Authorisation> {
    const request: z.infer<typeof AuthorisationRequest> = {
      dsimId: registration.dsimId,
      orderId: registration.orderId,
      registrationServer: registration.registrationServer,
      device: {
        subject: certificate.subject,
        issuer: certificate.issuer,
        serialNumber: certificate.serialNumber,
        sha256: createHash('sha256').update(Buffer.from(certificate.rawData)).digest('hex'),
      },
      at: this.options.clock().toISOString(),
    };
    const decision = await this.ask(request);
    if (decision.decision === 'deny') {
      throw new SimcredError(
        'SIMCRED_AUTHORISATION_DENIED',
        `the operator's authorisation hook refused this device${decision.reason ? `: ${decision.reason}` : ''}`,
      );
    }
    if (decision.plan !== undefined && this.options.plans && !this.options.plans.includes(decision.plan)) {
      throw this.unavailable(`it chose plan "${decision.plan}", which the configuration does not list`);
    }
    return { plan: decision.plan ?? null };
  }

  private async ask(
    request: z.infer<typeof AuthorisationRequest>,
  ): Promise<z.infer<typeof AuthorisationDecision>> {
    let answer: Awaited<ReturnType<PeerClient['send']>>;
    try {
      answer = await this.options.client.send(
        this.options.url,
        'POST',
        JSON.stringify(request),
        'application/json',
        AbortSignal.timeout(this.options.timeoutMs),
      );
    } catch (err) {
      const why = isSimcredError(err) ? err.message : 'no answer';
      throw this.unavailable(`${why} (within ${this.options.timeoutMs} ms)`);
    }
    if (answer.statusCode !== 200) throw this.unavailable(`it answered HTTP ${answer.statusCode}`);
    let json: unknown;
    try {
      json = JSON.parse(answer.text);
    } catch {
      throw this.unavailable('its answer is not JSON');
    }
    const decision = AuthorisationDecision.safeParse(json);
    if (!decision.success) {
      throw this.unavailable(
        `its answer is not a decision (${decision.error.issues[0]?.message ?? 'invalid'})`,
      );
    }
    return decision.data;
  }

  private unavailable(why: string): SimcredError {
    this.options.log.warn({ hook: this.options.url }, `authorisation hook failed: ${why}`);
    return new SimcredError(
      'SIMCRED_AUTHORISATION_UNAVAILABLE',
      `the operator's authorisation hook failed: ${why}`,
      {
        retryAfter: RETRY_AFTER_SECONDS,
      },
    );
  }
}
