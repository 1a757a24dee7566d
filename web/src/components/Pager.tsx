/** Previous / next buttons over cursor pages (the server hands out the next page's cursor). */
export function Pager(props: {
  label: string;
  hasPrevious: boolean;
  hasNext: boolean;
  onPrevious(): void;
  onNext(): void;
}) {
  if (!props.hasPrevious && !props.hasNext) return null;
  return (
    <nav class="pager" aria-label={props.label}>
      <button type="button" class="button" disabled={!props.hasPrevious} onClick={props.onPrevious}>
        Previous page
      </button>
      <button type="button" class="button" disabled={!props.hasNext} onClick={props.onNext}>
        Next page
      </button>
    </nav>
  );
}

/** A stack of cursors: the first page has none, each next page the cursor the last one gave. */
export class Cursors {
  constructor(readonly stack: (string | undefined)[] = [undefined]) {}
  get current(): string | undefined {
    return this.stack[this.stack.length - 1];
  }
  next(cursor: string): Cursors {
    return new Cursors([...this.stack, cursor]);
  }
  previous(): Cursors {
    return new Cursors(this.stack.length > 1 ? this.stack.slice(0, -1) : this.stack);
  }
  get hasPrevious(): boolean {
    return this.stack.length > 1;
  }
}
