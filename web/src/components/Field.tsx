import type {
  ComponentChildren,
  InputHTMLAttributes,
  PartialInputHTMLAttributes,
  TextareaHTMLAttributes,
} from 'preact';

type InputProps = Omit<PartialInputHTMLAttributes<HTMLInputElement>, 'id' | 'class'>;

/** What a control needs to point at its hint and error line. */
interface Described {
  'aria-describedby': string;
  'aria-invalid': 'true' | undefined;
}

/**
 * A labelled control with its hint and its error beside it. The error line is always present and
 * polite-live, so a screen reader announces the server's message for this field when it appears.
 */
function FieldFrame(props: {
  id: string;
  label: string;
  hint?: string | undefined;
  error?: string | undefined;
  control: (described: Described) => ComponentChildren;
}) {
  const { id, label, hint, error } = props;
  const described: Described = {
    'aria-describedby': [hint ? `${id}-hint` : '', `${id}-error`].filter(Boolean).join(' '),
    'aria-invalid': error ? 'true' : undefined,
  };
  return (
    <div class={error ? 'field field--invalid' : 'field'}>
      <label for={id}>{label}</label>
      {hint && (
        <p class="hint" id={`${id}-hint`}>
          {hint}
        </p>
      )}
      {props.control(described)}
      <FieldError id={`${id}-error`} error={error} />
    </div>
  );
}

export function TextField(
  props: InputProps & { id: string; label: string; hint?: string; error?: string | undefined },
) {
  const { id, label, hint, error, ...input } = props;
  return (
    <FieldFrame
      id={id}
      label={label}
      hint={hint}
      error={error}
      control={(described) => (
        // preact types <input> per type (roles allowed for each); these fields are text-like, type included.
        <input id={id} {...described} {...(input as InputHTMLAttributes<HTMLInputElement>)} />
      )}
    />
  );
}

export function FieldError(props: { id: string; error?: string | undefined }) {
  return (
    <p class="field-error" id={props.id} aria-live="polite">
      {props.error}
    </p>
  );
}

/** The form's own message (errors that name no field, or success), announced at once. */
export function FormAlert(props: { error?: string | null | undefined; children?: ComponentChildren }) {
  return (
    <div class="form-alert" role="alert">
      {props.error && <p class="alert alert--error">{props.error}</p>}
      {props.children}
    </div>
  );
}

type TextAreaProps = Omit<TextareaHTMLAttributes<HTMLTextAreaElement>, 'id'>;

export function TextAreaField(
  props: TextAreaProps & { id: string; label: string; hint?: string; error?: string | undefined },
) {
  const { id, label, hint, error, ...textarea } = props;
  return (
    <FieldFrame
      id={id}
      label={label}
      hint={hint}
      error={error}
      control={(described) => <textarea id={id} {...described} {...textarea} />}
    />
  );
}
