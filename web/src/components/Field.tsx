import type {
  ComponentChildren,
  InputHTMLAttributes,
  PartialInputHTMLAttributes,
  TextareaHTMLAttributes,
} from 'preact';

type InputProps = Omit<PartialInputHTMLAttributes<HTMLInputElement>, 'id' | 'class'>;

/**
 * A labelled input with its hint and its error beside it. The error line is always present and
 * polite-live, so a screen reader announces the server's message for this field when it appears.
 */
export function TextField(
  props: InputProps & { id: string; label: string; hint?: string; error?: string | undefined },
) {
  const { id, label, hint, error, ...input } = props;
  const describedBy = [hint ? `${id}-hint` : '', `${id}-error`].filter(Boolean).join(' ');
  return (
    <div class={error ? 'field field--invalid' : 'field'}>
      <label for={id}>{label}</label>
      {hint && (
        <p class="hint" id={`${id}-hint`}>
          {hint}
        </p>
      )}
      <input
        id={id}
        aria-describedby={describedBy}
        aria-invalid={error ? 'true' : undefined}
        // preact types <input> per type (roles allowed for each); these fields are text-like, type included.
        {...(input as InputHTMLAttributes<HTMLInputElement>)}
      />
      <FieldError id={`${id}-error`} error={error} />
    </div>
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
  const describedBy = [hint ? `${id}-hint` : '', `${id}-error`].filter(Boolean).join(' ');
  return (
    <div class={error ? 'field field--invalid' : 'field'}>
      <label for={id}>{label}</label>
      {hint && (
        <p class="hint" id={`${id}-hint`}>
          {hint}
        </p>
      )}
      <textarea
        id={id}
        aria-describedby={describedBy}
        aria-invalid={error ? 'true' : undefined}
        {...textarea}
      />
      <FieldError id={`${id}-error`} error={error} />
    </div>
  );
}
