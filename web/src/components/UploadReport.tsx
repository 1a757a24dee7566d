import type { Rejection, Upload } from '../api.js';
import { formatCount } from '../wording.js';

/** How far an upload is: rows read so far out of the file's line count (when known). */
export function UploadProgress(props: { upload: Upload | null; totalRows: number | null; fileName: string }) {
  const rows = props.upload?.rows ?? 0;
  const label = `Upload of ${props.fileName}`;
  return (
    <div class="upload-progress">
      <label for="upload-progress-bar">{label}</label>
      {props.totalRows ? (
        <progress id="upload-progress-bar" max={props.totalRows} value={Math.min(rows, props.totalRows)}>
          {Math.round((100 * rows) / props.totalRows)}%
        </progress>
      ) : (
        <progress id="upload-progress-bar" />
      )}
      <p aria-live="polite">
        {props.upload
          ? `${formatCount(rows)} rows read: ${formatCount(props.upload.accepted)} accepted, ${formatCount(props.upload.rejectedCount)} rejected.`
          : 'Sending the file…'}
      </p>
    </div>
  );
}

export function RejectionList(props: { rejected: Rejection[]; total: number; idPrefix: string }) {
  if (props.total === 0) return null;
  return (
    <table class="table table--stack rejections">
      <caption>
        Rejected rows
        {props.total > props.rejected.length
          ? ` (the first ${formatCount(props.rejected.length)} of ${formatCount(props.total)})`
          : ''}
      </caption>
      <thead>
        <tr>
          <th scope="col">Line</th>
          <th scope="col">DSIM_ID</th>
          <th scope="col">Reason</th>
        </tr>
      </thead>
      <tbody>
        {props.rejected.map((r, i) => (
          <tr key={`${props.idPrefix}-${i}`}>
            <td data-label="Line">{r.line ?? '—'}</td>
            <td data-label="DSIM_ID" class="mono">
              {r.dsimId ?? '—'}
            </td>
            <td data-label="Reason">{r.message}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** The finished upload: how many rows were registered, and each rejected row with its reason. */
export function UploadReport(props: { upload: Upload }) {
  const u = props.upload;
  return (
    <div class="report" aria-labelledby={`report-${u.id}`}>
      <h3 id={`report-${u.id}`}>Report for {u.fileName ?? 'the uploaded file'}</h3>
      <p>
        {formatCount(u.rows)} rows read. <strong>{formatCount(u.accepted)} accepted</strong> and being
        registered
        {u.rejectedCount > 0 ? (
          <>
            ; <strong>{formatCount(u.rejectedCount)} rejected</strong> and not registered (listed below).
          </>
        ) : (
          '; none rejected.'
        )}
      </p>
      <RejectionList rejected={u.rejected} total={u.rejectedCount} idPrefix={u.id} />
    </div>
  );
}

/** Counts the file's non-empty lines as it streams past, so progress can be shown as a share. */
export async function countRows(file: File, csv: boolean): Promise<number> {
  const reader = file.stream().getReader();
  let lines = 0;
  let lastByte = 10;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    for (const byte of value) {
      if (byte === 10 && lastByte !== 10) lines++;
      lastByte = byte;
    }
  }
  if (lastByte !== 10) lines++;
  return csv ? Math.max(lines - 1, 0) : lines; // a CSV's header is not a row
}
