/** What a payment provider answers for one authorisation. */
export type PaymentResult = { status: 'authorised' } | { status: 'declined'; reason: string };

/**
 * Where a contract's payment is authorised. The portal knows nothing else of payments; a real
 * processor implements this interface.
 */
export interface PaymentProvider {
  authorise(request: {
    contractId: string;
    amount: string;
    currency: string;
    reference: string;
  }): Promise<PaymentResult>;
}

/**
 * The built-in test provider (docs/portal.md): a payment reference that starts with `decline`
 * (any case) is declined, every other reference is authorised. No money moves.
 *
 * @example
 *   await testPaymentProvider.authorise({ contractId, amount: '0.40', currency: 'EUR', reference: 'decline-1' });
 *   // { status: 'declined', reason: 'test provider: references starting with "decline" are declined' }
 */
export const testPaymentProvider: PaymentProvider = {
  async authorise({ reference }) {
    if (/^decline/i.test(reference.trim())) {
      return { status: 'declined', reason: 'test provider: references starting with "decline" are declined' };
    }
    return { status: 'authorised' };
  },
};
