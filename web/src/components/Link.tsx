import type { ComponentChildren } from 'preact';
import { useApp } from '../app.js';

/** A real link (keyboard, middle-click, copy address) that navigates inside the app. */
export function Link(props: { href: string; class?: string; children: ComponentChildren }) {
  const { navigate } = useApp();
  return (
    <a
      href={props.href}
      class={props.class}
      onClick={(event) => {
        if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
        event.preventDefault();
        navigate(props.href);
      }}
    >
      {props.children}
    </a>
  );
}
