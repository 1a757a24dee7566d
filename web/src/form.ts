import { useState } from 'preact/hooks';
import { ApiError } from './api.js';
import { describeError } from './wording.js';

/** A form's submit state: busy while the request runs, the server's errors by field otherwise. */
export interface FormState {
  busy: boolean;
  fieldErrors: Record<string, string>;
  error: string | null;
  submit(action: () => Promise<void>): Promise<void>;
}

/**
 * Runs a submit and files the server's errors: those naming one of `fields` (paths as the server
 * names them: "billing.country") go next to that field, which then gets the focus; `codeFields` puts
 * a code's plain message next to a field (SIMCRED_ACCOUNT_EXISTS next to the e-mail); the rest go
 * to the form's alert.
 */
export function useFormState(
  formId: string,
  fields: readonly string[],
  codeFields: Record<string, string> = {},
): FormState {
  const [busy, setBusy] = useState(false);
  const [fieldErrors, setFieldErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);

  async function submit(action: () => Promise<void>) {
    setBusy(true);
    setError(null);
    setFieldErrors({});
    try {
      await action();
    } catch (err) {
      const byField: Record<string, string> = {};
      const rest: string[] = [];
      if (err instanceof ApiError) {
        for (const [path, message] of Object.entries(err.fields)) {
          if (fields.includes(path)) byField[path] = message.charAt(0).toUpperCase() + message.slice(1) + '.';
          else rest.push(`${path}: ${message}`);
        }
        const codeField = codeFields[err.code];
        if (codeField) byField[codeField] = describeError(err);
        else if (Object.keys(err.fields).length === 0) rest.push(describeError(err));
      } else {
        rest.push(describeError(err));
      }
      setFieldErrors(byField);
      const count = Object.keys(byField).length;
      setError(
        rest.length > 0
          ? rest.join(' ')
          : `Please correct ${count === 1 ? 'the field' : `the ${count} fields`} marked below.`,
      );
      const first = fields.find((f) => byField[f]);
      if (first) document.getElementById(fieldId(formId, first))?.focus();
    } finally {
      setBusy(false);
    }
  }
  return { busy, fieldErrors, error, submit };
}

/** The element id of a form's field: "contract" + "billing.country" → "contract-billing-country". */
export function fieldId(formId: string, path: string): string {
  return `${formId}-${path.replace(/\./g, '-')}`;
}
