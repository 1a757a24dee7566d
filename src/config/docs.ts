import { z } from 'zod';
import { configuredUrls } from '../system/wiring.js';
import { configSchema, envVariableName, type SimcredConfig } from './config.js';

/** The part of JSON Schema that z.toJSONSchema gives for the config's fields. */
interface JsonSchema {
  type?: string;
  description?: string;
  default?: unknown;
  const?: unknown;
  enum?: unknown[];
  pattern?: string;
  minLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  minItems?: number;
  items?: JsonSchema;
  properties?: Record<string, JsonSchema>;
  oneOf?: JsonSchema[];
}

/** One field that holds a value (not an object of fields), with its dotted path. */
export interface ConfigLeaf {
  path: string[];
  type: string;
  /** The default as JSON, or undefined when the field has none. */
  default: string | undefined;
  description: string | undefined;
}

/**
 * Every value-holding field of the config schema, in schema order. A discriminated union (database)
 * gives one leaf for its tag, with the branches' descriptions, and one per branch-only field.
 *
 * @example
 *   configLeaves().find((l) => l.path.join('.') === 'ports.ocsp')?.default; // '7420'
 */
export function configLeaves(): ConfigLeaf[] {
  const root = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  return objectLeaves(root, []);
}

function objectLeaves(schema: JsonSchema, path: string[]): ConfigLeaf[] {
  return Object.entries(schema.properties ?? {}).flatMap(([name, field]) =>
    fieldLeaves(field, [...path, name]),
  );
}

function fieldLeaves(field: JsonSchema, path: string[]): ConfigLeaf[] {
  if (field.type === 'object' && field.properties) return objectLeaves(field, path);
  if (field.oneOf?.every((branch) => branch.type === 'object')) return unionLeaves(field, path);
  return [
    {
      path,
      type: describeType(field),
      default: field.default === undefined ? undefined : JSON.stringify(field.default),
      description: field.description,
    },
  ];
}

/** A tagged union of objects: the tag (the one property with a const in every branch), then the rest. */
function unionLeaves(field: JsonSchema, path: string[]): ConfigLeaf[] {
  const branches = field.oneOf!;
  const tag = Object.keys(branches[0]!.properties ?? {}).find((name) =>
    branches.every((b) => b.properties?.[name]?.const !== undefined),
  );
  if (!tag) throw new Error(`${path.join('.')}: a union without a tag cannot be documented`);
  const defaultTag = (field.default as Record<string, unknown> | undefined)?.[tag];
  const leaves: ConfigLeaf[] = [
    {
      path: [...path, tag],
      type: branches.map((b) => `\`${JSON.stringify(b.properties![tag]!.const)}\``).join(' | '),
      default: defaultTag === undefined ? undefined : JSON.stringify(defaultTag),
      description: branches.every((b) => b.properties![tag]!.description)
        ? branches
            .map((b) => `\`${String(b.properties![tag]!.const)}\`: ${b.properties![tag]!.description}`)
            .join(' ')
        : undefined,
    },
  ];
  for (const branch of branches) {
    for (const [name, sub] of Object.entries(branch.properties!)) {
      if (name === tag) continue;
      const [leaf] = fieldLeaves(sub, [...path, name]);
      leaves.push({
        ...leaf!,
        type: `${leaf!.type} (with ${tag} \`${String(branch.properties![tag]!.const)}\`)`,
      });
    }
  }
  return leaves;
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

function describeType(s: JsonSchema): string {
  if (s.const !== undefined) return `\`${JSON.stringify(s.const)}\``;
  if (s.enum) return s.enum.map((v) => `\`${JSON.stringify(v)}\``).join(' | ');
  if (s.type === 'array') {
    const items = s.items ? describeType(s.items) : 'any';
    return `array of ${items}${s.minItems ? `, at least ${s.minItems}` : ''}`;
  }
  if (s.type === 'integer' || s.type === 'number') {
    const low = s.exclusiveMinimum !== undefined ? s.exclusiveMinimum + 1 : s.minimum;
    const high = s.maximum !== undefined && s.maximum < MAX_SAFE ? s.maximum : undefined;
    if (low !== undefined && high !== undefined) return `${s.type} ${low}–${high}`;
    if (low !== undefined) return `${s.type} ≥ ${low}`;
    return s.type;
  }
  if (s.type === 'string') {
    if (s.pattern) return `string \`${s.pattern}\``;
    return s.minLength ? 'non-empty string' : 'string';
  }
  return s.type ?? 'any';
}

/** Markdown table cells must not break the row. */
function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
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
  const groups = new Map<string, ConfigLeaf[]>();
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

Every role listens on \`host\`. Peers reach one another at these URLs (\`configuredUrls\` in
\`src/system/wiring.ts\`; with port 0 the actual ports are used). A device does not read this config: it
learns its registration server, PHLR, OCSP responder and HSS from its factory image
([device.md](device.md)).

| role | field | default port(s) | default URL(s) |
| --- | --- | --- | --- |
${portRows.join('\n')}

## Fields

${sections.join('\n')}`;
}
