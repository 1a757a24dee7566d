// Package 0 (OMA-TS-DM_Notification-V1_2 §6): the bit layout of the trigger header and the digest,
// recomputed here step by step from the specification's formula rather than through the code's own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { buildNotification, verifyNotification } from '../../src/protocol/omadm/notification.js';

const md5 = (data: string | Buffer) => createHash('md5').update(data).digest();

test('the trigger header: version 1.2, ui-mode, initiator, session id, server identifier; the digest as §6.2 defines it', () => {
  const secret = { password: 'p4ss', nonce: 'DSIM0000000000000001' };
  const bytes = buildNotification(
    { uiMode: 1, initiator: 1, sessionId: 0x1a2b, serverId: 'srv', body: Buffer.alloc(0) },
    secret,
  );
  const notification = bytes.subarray(16);
  // 0000001100 01 1 000… : version 12 in 10 bits, ui-mode 1, initiator 1, 27 bits of zero.
  assert.deepEqual([...notification.subarray(0, 5)], [0x03, 0x18, 0, 0, 0]);
  assert.equal(notification.readUInt16BE(5), 0x1a2b);
  assert.equal(notification[7], 3);
  assert.equal(notification.subarray(8).toString(), 'srv');
  const expected = md5(
    `${md5('srv:p4ss').toString('base64')}:${secret.nonce}:${md5(notification).toString('base64')}`,
  );
  assert.deepEqual(bytes.subarray(0, 16), expected);
  const read = verifyNotification(bytes, 'srv', secret);
  assert.deepEqual(
    { uiMode: read.uiMode, initiator: read.initiator, sessionId: read.sessionId },
    { uiMode: 1, initiator: 1, sessionId: 0x1a2b },
  );
});

test('a wrong digest, another nonce, another server, a version other than 1.2 or a short message: refused', () => {
  const secret = { password: 'p4ss', nonce: 'n' };
  const bytes = buildNotification(
    { uiMode: 0, initiator: 1, sessionId: 7, serverId: 'srv', body: Buffer.from('x') },
    secret,
  );
  const refused = (b: Buffer, server = 'srv', s = secret) =>
    assert.throws(
      () => verifyNotification(b, server, s),
      (e: { code?: string }) => e.code === 'SIMCRED_DM_NOTIFICATION_INVALID',
    );
  const wrongDigest = Buffer.from(bytes);
  wrongDigest[0]! ^= 0x80;
  refused(wrongDigest);
  refused(bytes, 'srv', { ...secret, nonce: 'm' });
  refused(bytes, 'other');
  const version11 = Buffer.from(bytes);
  version11.writeUInt16BE((11 << 6) | (version11.readUInt16BE(16) & 0x3f), 16);
  refused(version11);
  refused(bytes.subarray(0, 23));
});
