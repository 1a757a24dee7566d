import { z } from 'zod';

// Field tables for docs generated from zod schemas (docs/configuration.md, docs/device.md).

/** The part of JSON Schema that z.toJSONSchema gives for the documented fields. */
interface JsonSchema {
  type?: string;
  description?: string;
  default?: unknown;
  const?: unknown;
  enum?: unknown[];
  pattern?: string;
  format?: string;
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
export interface SchemaLeaf {
  path: string[];
  type: string;
  /** The default as JSON, or undefined when the field has none. */
  default: string | undefined;
  description: string | undefined;
}

/**
 * Every value-holding field of an object schema, in schema order, from its JSON Schema (so types and
 * defaults read as a JSON user sees them). A discriminated union gives one leaf for its tag, with the
 * branches' descriptions, and one per branch-only field.
 *
 * @example
 *   schemaLeaves(configSchema).find((l) => l.path.join('.') === 'ports.ocsp')?.default; // '7420'
 */
export function schemaLeaves(schema: z.ZodType): SchemaLeaf[] {
  const root = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  return objectLeaves(root, []);
}

function objectLeaves(schema: JsonSchema, path: string[]): SchemaLeaf[] {
  return Object.entries(schema.properties ?? {}).flatMap(([name, field]) =>
    fieldLeaves(field, [...path, name]),
  );
}

function fieldLeaves(field: JsonSchema, path: string[]): SchemaLeaf[] {
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
function unionLeaves(field: JsonSchema, path: string[]): SchemaLeaf[] {
  const branches = field.oneOf!;
  const tag = Object.keys(branches[0]!.properties ?? {}).find((name) =>
    branches.every((b) => b.properties?.[name]?.const !== undefined),
  );
  if (!tag) throw new Error(`${path.join('.')}: a union without a tag cannot be documented`);
  const defaultTag = (field.default as Record<string, unknown> | undefined)?.[tag];
  const leaves: SchemaLeaf[] = [
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

export function describeType(s: JsonSchema): string {
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
    if (s.format) return `string (${s.format})`;
    if (s.pattern) return `string \`${s.pattern}\``;
    return s.minLength ? 'non-empty string' : 'string';
  }
  return s.type ?? 'any';
}

/** Markdown table cells must not break the row. */
export function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}
