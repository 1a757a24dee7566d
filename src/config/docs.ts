import { configuredUrls } from '../system/wiring.js';
import { configSchema, envVariableName, type SimcredConfig } from './config.js';
import { cell, schemaLeaves, type SchemaLeaf } from './schema-doc.js';

/**
 * Every value-holding field of the config schema, in schema order.
 *
 * @example
 *   configLeaves().find((l) => l.path.join('.') === 'ports.ocsp')?.default; // '7420'
 */
export function configLeaves(): SchemaLeaf[] {
  return schemaLeaves(configSchema);
}

/**
 * docs/configuration.md, from the config schema: every field with its type, default, environment
 * variable and meaning, and the default port and URL of every role.
 *
 * @example
 *   writeFileSync('docs/configuration.md', renderConfigDoc());
 */
export function renderConfigDoc(): string {
  const defaults = configSchema.parse({});
  const urls = configuredUrls({ ...defaults, pkiDir: '' } satisfies SimcredConfig);
  const portRows = Object.entries(defaults.ports).map(([role, value]) => {
    const url = (urls as Record<string, string | string[] | undefined>)[role];
    const shown =
      url === undefined
        ? 'none (nothing listens)'
        : [url]
            .flat()
            .map((u) => `\`${u}\``)
            .join(', ');
    return `| ${role} | \`ports.${role}\` | ${[value].flat().join(', ')} | ${shown} |`;
  });
  const groups = new Map<string, SchemaLeaf[]>();
  for (const leaf of configLeaves()) {
    const group = leaf.path.length > 1 ? leaf.path[0]! : '';
    groups.set(group, [...(groups.get(group) ?? []), leaf]);
  }
  const sections = [...groups].map(([group, leaves]) => {
    const rows = leaves.map(
      (l) =>
        `| \`${l.path.join('.')}\` | \`${envVariableName(l.path)}\` | ${cell(l.type)} | ${
          l.default === undefined ? 'none' : `\`${cell(l.default)}\``
        } | ${cell(l.description ?? '')} |`,
    );
    return [
      `### ${group === '' ? 'Top level' : `\`${group}\``}`,
      '',
      '| field | environment variable | type | default | meaning |',
      '| --- | --- | --- | --- | --- |',
      ...rows,
      '',
    ].join('\n');
  });
  return `# Configuration

Generated from the config schema (\`src/config/config.ts\`) by \`npm run docs:config\`; a test keeps the
two in step.

Every role reads one typed config: the defaults below, then a JSON file (\`--config FILE\`), then
\`SIMCRED_*\` environment variables, then the command's own options (\`--dir\` sets \`dataDir\`). An
environment variable names a field path in upper snake case with \`__\` between levels
(\`SIMCRED_PORTS__OCSP=9000\`, \`SIMCRED_LOG__LEVEL=debug\`). A string field takes the value as given
(\`SIMCRED_HSS__AMF=8000\` is the string \`"8000"\`); any other field reads it as JSON, so a list is
\`SIMCRED_PORTS__REGISTRATION='[7411,7412]'\`. Unknown fields are refused, and every invalid field is
reported at once, by path (\`SIMCRED_CONFIG_INVALID\`).

## Ports and URLs

Every role listens on \`host\`, or on its own address in \`listen\`. Peers reach one another at these
URLs, or at the public URLs \`urls\` names (a load balancer's in front of several instances;
\`configuredUrls\` in \`src/system/wiring.ts\`; with port 0 the actual ports are used).
[deployment.md](deployment.md) shows several hosts behind HAProxy. \`simcred up\`, \`simcred demo\`
and \`simcred serve <role>\` read the config; \`simcred serve ocsp\` reads it with \`--config\`, or
takes \`--dir\` (the PKI folder), \`--host\` and \`--port\` options instead (default \`127.0.0.1\`,
7420). A device does not read this config: it
learns its registration server, PHLR, OCSP responder and HSS from its factory image
([device.md](device.md)).

| role | field | default port(s) | default URL(s) |
| --- | --- | --- | --- |
${portRows.join('\n')}

## Fields

${sections.join('\n')}`;
}
