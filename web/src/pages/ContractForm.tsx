import { useEffect, useState } from 'preact/hooks';
import type { Plan } from '../api.js';
import { useApp } from '../app.js';
import { FieldError, FormAlert, TextAreaField, TextField } from '../components/Field.js';
import { fieldId, useFormState } from '../form.js';
import { TEST_PAYMENT_HINT, describeError, formatCount } from '../wording.js';

const FORM = 'contract';
const FIELDS = [
  'planId',
  'billing.name',
  'billing.address',
  'billing.country',
  'billing.email',
  'billing.vatId',
  'paymentReference',
] as const;

function price(plan: Plan): string {
  return `${plan.monthlyPricePerDevice.amount} ${plan.monthlyPricePerDevice.currency}`;
}

/** Sign a contract: a plan from the catalogue, billing details and a payment reference. */
export function ContractForm() {
  const { api, navigate } = useApp();
  const form = useFormState(FORM, FIELDS, { SIMCRED_PLAN_UNKNOWN: 'planId' });
  const [plans, setPlans] = useState<Plan[] | null>(null);
  const [plansError, setPlansError] = useState<string | null>(null);
  const [values, setValues] = useState({
    planId: '',
    name: '',
    address: '',
    country: '',
    email: '',
    vatId: '',
    paymentReference: '',
  });
  const set = (key: keyof typeof values) => (e: { currentTarget: { value: string } }) =>
    setValues({ ...values, [key]: e.currentTarget.value });

  useEffect(() => {
    api
      .listPlans()
      .then((answer) => setPlans(answer.plans))
      .catch((err: unknown) => setPlansError(describeError(err)));
  }, [api]);

  const e = form.fieldErrors;
  return (
    <section aria-labelledby="new-contract-title">
      <h1 id="new-contract-title">Sign a new contract</h1>
      <p class="lead">
        Choose a plan, tell us whom to bill, and authorise the payment. You add devices next.
      </p>
      <form
        class="card form-wide"
        noValidate
        onSubmit={(event) => {
          event.preventDefault();
          void form.submit(async () => {
            const contract = await api.createContract({
              planId: values.planId,
              billing: {
                name: values.name,
                address: values.address,
                country: values.country.trim().toUpperCase(),
                email: values.email,
                ...(values.vatId.trim() ? { vatId: values.vatId } : {}),
              },
              paymentReference: values.paymentReference,
            });
            navigate(`/contracts/${contract.id}`);
          });
        }}
      >
        <FormAlert error={form.error} />
        <fieldset
          class={e.planId ? 'plans field--invalid' : 'plans'}
          aria-describedby={`${fieldId(FORM, 'planId')}-error`}
        >
          <legend>Plan</legend>
          {plansError && <p class="alert alert--error">{plansError}</p>}
          {!plans && !plansError && <p>Loading the plans…</p>}
          {plans?.map((plan, i) => (
            <div class="plan" key={plan.id}>
              <input
                type="radio"
                name="planId"
                id={i === 0 ? fieldId(FORM, 'planId') : `${fieldId(FORM, 'planId')}-${plan.id}`}
                value={plan.id}
                checked={values.planId === plan.id}
                onChange={set('planId')}
              />
              <label for={i === 0 ? fieldId(FORM, 'planId') : `${fieldId(FORM, 'planId')}-${plan.id}`}>
                <span class="plan__name">{plan.name}</span>
                <span class="plan__price">{price(plan)} per device and month</span>
                <span class="plan__facts">
                  {formatCount(plan.dataPerMonthMb)} MB of data a month · up to {formatCount(plan.maxDevices)}{' '}
                  devices
                </span>
                <span class="plan__description">{plan.description}</span>
              </label>
            </div>
          ))}
          <FieldError id={`${fieldId(FORM, 'planId')}-error`} error={e.planId} />
        </fieldset>

        <fieldset>
          <legend>Billing</legend>
          <TextField
            id={fieldId(FORM, 'billing.name')}
            label="Name on the invoice"
            autoComplete="organization"
            required
            value={values.name}
            onInput={set('name')}
            error={e['billing.name']}
          />
          <TextAreaField
            id={fieldId(FORM, 'billing.address')}
            label="Billing address"
            autoComplete="street-address"
            rows={3}
            required
            value={values.address}
            onInput={set('address')}
            error={e['billing.address']}
          />
          <TextField
            id={fieldId(FORM, 'billing.country')}
            label="Country"
            hint="Two-letter code, for example DE, FR or US."
            autoComplete="country"
            maxLength={2}
            required
            value={values.country}
            onInput={set('country')}
            error={e['billing.country']}
          />
          <TextField
            id={fieldId(FORM, 'billing.email')}
            label="Invoice e-mail address"
            type="email"
            autoComplete="email"
            required
            value={values.email}
            onInput={set('email')}
            error={e['billing.email']}
          />
          <TextField
            id={fieldId(FORM, 'billing.vatId')}
            label="VAT number (optional)"
            value={values.vatId}
            onInput={set('vatId')}
            error={e['billing.vatId']}
          />
        </fieldset>

        <fieldset>
          <legend>Payment</legend>
          <TextField
            id={fieldId(FORM, 'paymentReference')}
            label="Payment reference"
            hint={`The reference of your purchase order or card mandate. ${TEST_PAYMENT_HINT}`}
            required
            value={values.paymentReference}
            onInput={set('paymentReference')}
            error={e.paymentReference}
          />
        </fieldset>
        <button type="submit" class="button button--primary" disabled={form.busy}>
          {form.busy ? 'Signing…' : 'Sign the contract'}
        </button>
      </form>
    </section>
  );
}
