// npm run docs: writes docs/deletion-rules.md from the live catalog, on a throwaway cluster so it
// needs no running stack. The document is derived from pg_constraint, pg_trigger and pg_policy
// (and the comments on them), never from a hand-kept list: cascade rules kept in a document
// drift from the schema they describe. docs/deletion-rules.test.ts fails when the committed file
// differs from what this renders.
//
//   npm run docs              regenerate docs/deletion-rules.md
//   npm run docs -- --check   exit 1 if the committed file is stale

import postgres from "postgres";
import { DENO_BIN, ROOT } from "./lib/config.ts";
import { run } from "./lib/proc.ts";
import { Stack } from "./lib/stack.ts";

type Sql = postgres.Sql;

export const DELETION_DOCS_FILE = `${ROOT}/docs/deletion-rules.md`;
export const STALE_MESSAGE = "docs/deletion-rules.md is stale: run npm run docs";

/** Herald's own schemas; tables elsewhere (auth.users) appear only where a key crosses over. */
const SCHEMAS = ["public", "herald"];

/** The entities of preview_delete() and deletion_log, in the contract's order. */
export const DELETABLE_ENTITIES: readonly { entity: string; table: string }[] = [
  { entity: "workspace", table: "workspaces" },
  { entity: "contact", table: "contacts" },
  { entity: "sequence", table: "sequences" },
  { entity: "sender", table: "senders" },
  { entity: "campaign", table: "campaigns" },
  { entity: "appointment", table: "appointments" },
  { entity: "whatsapp_group", table: "whatsapp_groups" },
];

// ---------------------------------------------------------------------------------------------
// Catalog
// ---------------------------------------------------------------------------------------------

export interface ForeignKey {
  name: string;
  child: string;
  parent: string;
  childCols: string[];
  parentCols: string[];
  /** pg_constraint.confdeltype: a no action, r restrict, c cascade, n set null, d set default. */
  onDelete: "a" | "r" | "c" | "n" | "d";
  /** The columns a set null / set default clears: confdelsetcols (PG 15), else the whole key. */
  setCols: string[];
  notNullCols: string[];
  deferrable: boolean;
}

export interface Trigger {
  table: string;
  name: string;
  timing: "BEFORE" | "AFTER" | "INSTEAD OF";
  events: ("INSERT" | "UPDATE" | "DELETE" | "TRUNCATE")[];
  updateCols: string[];
  level: "row" | "statement";
  fn: string;
  when: string | null;
  enabled: boolean;
  comment: string | null;
  commentSource: "trigger" | "function" | null;
}

export interface Policy {
  table: string;
  name: string;
  command: string;
  permissive: boolean;
  roles: string[];
  using: string | null;
}

export interface KeylessIdColumn {
  table: string;
  column: string;
  comment: string | null;
}

export interface DeletionCatalog {
  tables: Map<string, { comment: string | null; rls: boolean }>;
  foreignKeys: ForeignKey[];
  triggers: Trigger[];
  deletePolicies: Policy[];
  keylessIdColumns: KeylessIdColumn[];
}

/** Plain code-unit order: the same on every machine, whatever the locale. */
function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function byKeys<T>(...keys: ((x: T) => string)[]): (a: T, b: T) => number {
  return (a, b) => {
    for (const k of keys) {
      const c = cmp(k(a), k(b));
      if (c) return c;
    }
    return 0;
  };
}

/** Tables are shown without `public.`; every other schema is spelled out. */
const DISPLAY_NAME = `case when n.nspname = 'public' then c.relname::text else n.nspname || '.' || c.relname end`;

export async function readDeletionCatalog(sql: Sql): Promise<DeletionCatalog> {
  const tableRows = await sql.unsafe<{ name: string; comment: string | null; rls: boolean }[]>(
    `select ${DISPLAY_NAME} as name, obj_description(c.oid, 'pg_class') as comment, c.relrowsecurity as rls
     from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
     where n.nspname = any ($1::text[]) and c.relkind in ('r', 'p') and not c.relispartition`,
    [SCHEMAS],
  );

  const fkRows = await sql.unsafe<{
    name: string;
    child: string;
    parent: string;
    child_cols: string[];
    parent_cols: string[];
    on_delete: ForeignKey["onDelete"];
    set_cols: string[];
    not_null_cols: string[];
    deferrable: boolean;
    parent_comment: string | null;
  }[]>(
    `select k.conname::text as name,
            (select ${DISPLAY_NAME} from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
              where c.oid = k.conrelid) as child,
            (select ${DISPLAY_NAME} from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
              where c.oid = k.confrelid) as parent,
            array(select a.attname::text from unnest(k.conkey) with ordinality u(attnum, ord)
                  join pg_catalog.pg_attribute a on a.attrelid = k.conrelid and a.attnum = u.attnum
                  order by u.ord) as child_cols,
            array(select a.attname::text from unnest(k.confkey) with ordinality u(attnum, ord)
                  join pg_catalog.pg_attribute a on a.attrelid = k.confrelid and a.attnum = u.attnum
                  order by u.ord) as parent_cols,
            k.confdeltype::text as on_delete,
            array(select a.attname::text
                  from unnest(case when cardinality(k.confdelsetcols) > 0 then k.confdelsetcols else k.conkey end)
                       with ordinality u(attnum, ord)
                  join pg_catalog.pg_attribute a on a.attrelid = k.conrelid and a.attnum = u.attnum
                  order by u.ord) as set_cols,
            array(select a.attname::text from unnest(k.conkey) with ordinality u(attnum, ord)
                  join pg_catalog.pg_attribute a on a.attrelid = k.conrelid and a.attnum = u.attnum
                  where a.attnotnull order by u.ord) as not_null_cols,
            k.condeferrable as deferrable,
            obj_description(k.confrelid, 'pg_class') as parent_comment
     from pg_catalog.pg_constraint k
     join pg_catalog.pg_class cc on cc.oid = k.conrelid
     join pg_catalog.pg_namespace cn on cn.oid = cc.relnamespace
     join pg_catalog.pg_class pc on pc.oid = k.confrelid
     join pg_catalog.pg_namespace pn on pn.oid = pc.relnamespace
     where k.contype = 'f' and k.conparentid = 0
       and (cn.nspname = any ($1::text[]) or pn.nspname = any ($1::text[]))`,
    [SCHEMAS],
  );

  const trigRows = await sql.unsafe<{
    table: string;
    name: string;
    tgtype: number;
    update_cols: string[];
    fn: string;
    def: string;
    enabled: string;
    trigger_comment: string | null;
    function_comment: string | null;
  }[]>(
    `select ${DISPLAY_NAME} as table, t.tgname::text as name, t.tgtype::int as tgtype,
            array(select a.attname::text from unnest(t.tgattr::int2[]) with ordinality u(attnum, ord)
                  join pg_catalog.pg_attribute a on a.attrelid = t.tgrelid and a.attnum = u.attnum
                  order by u.ord) as update_cols,
            pn.nspname || '.' || p.proname || '()' as fn,
            pg_catalog.pg_get_triggerdef(t.oid) as def,
            t.tgenabled::text as enabled,
            obj_description(t.oid, 'pg_trigger') as trigger_comment,
            obj_description(p.oid, 'pg_proc') as function_comment
     from pg_catalog.pg_trigger t
     join pg_catalog.pg_class c on c.oid = t.tgrelid
     join pg_catalog.pg_namespace n on n.oid = c.relnamespace
     join pg_catalog.pg_proc p on p.oid = t.tgfoid
     join pg_catalog.pg_namespace pn on pn.oid = p.pronamespace
     where not t.tgisinternal and t.tgparentid = 0 and n.nspname = any ($1::text[])`,
    [SCHEMAS],
  );

  const policyRows = await sql.unsafe<Policy[]>(
    `select ${DISPLAY_NAME} as table, p.polname::text as name,
            case p.polcmd when 'd' then 'DELETE' when '*' then 'ALL' end as command,
            p.polpermissive as permissive,
            array(select case when r.oid = 0 then 'public' else pg_catalog.pg_get_userbyid(r.oid)::text end
                  from unnest(p.polroles) r(oid) order by 1) as roles,
            pg_catalog.pg_get_expr(p.polqual, p.polrelid) as using
     from pg_catalog.pg_policy p
     join pg_catalog.pg_class c on c.oid = p.polrelid
     join pg_catalog.pg_namespace n on n.oid = c.relnamespace
     where p.polcmd in ('d', '*') and n.nspname = any ($1::text[])`,
    [SCHEMAS],
  );

  const keylessRows = await sql.unsafe<KeylessIdColumn[]>(
    `select ${DISPLAY_NAME} as table, a.attname::text as column, col_description(c.oid, a.attnum) as comment
     from pg_catalog.pg_attribute a
     join pg_catalog.pg_class c on c.oid = a.attrelid
     join pg_catalog.pg_namespace n on n.oid = c.relnamespace
     where n.nspname = any ($1::text[]) and c.relkind in ('r', 'p') and not c.relispartition
       and a.attnum > 0 and not a.attisdropped and a.attname like '%\\_id'
       and not exists (select 1 from pg_catalog.pg_constraint k
                       where k.conrelid = c.oid and k.contype = 'f' and a.attnum = any (k.conkey))`,
    [SCHEMAS],
  );

  const tables = new Map<string, { comment: string | null; rls: boolean }>();
  for (const t of [...tableRows].sort(byKeys((x) => x.name))) tables.set(t.name, { comment: t.comment, rls: t.rls });
  // Tables outside Herald's schemas that a key points at (auth.users) take part in the trees too.
  for (const f of fkRows) {
    if (!tables.has(f.parent)) tables.set(f.parent, { comment: f.parent_comment, rls: false });
  }

  const foreignKeys: ForeignKey[] = fkRows.map((f) => ({
    name: f.name,
    child: f.child,
    parent: f.parent,
    childCols: f.child_cols,
    parentCols: f.parent_cols,
    onDelete: f.on_delete,
    setCols: f.set_cols,
    notNullCols: f.not_null_cols,
    deferrable: f.deferrable,
  })).sort(byKeys((f) => f.child, (f) => f.name));

  const triggers: Trigger[] = trigRows.map((t): Trigger => {
    // tgtype bits, from src/include/catalog/pg_trigger.h
    const events: Trigger["events"] = [];
    if (t.tgtype & 4) events.push("INSERT");
    if (t.tgtype & 16) events.push("UPDATE");
    if (t.tgtype & 8) events.push("DELETE");
    if (t.tgtype & 32) events.push("TRUNCATE");
    const when = /\bWHEN \((.*)\) EXECUTE (?:FUNCTION|PROCEDURE)\b/.exec(t.def)?.[1] ?? null;
    return {
      table: t.table,
      name: t.name,
      timing: t.tgtype & 64 ? "INSTEAD OF" : t.tgtype & 2 ? "BEFORE" : "AFTER",
      events,
      updateCols: t.update_cols,
      level: t.tgtype & 1 ? "row" : "statement",
      fn: t.fn,
      when,
      enabled: t.enabled !== "D",
      comment: t.trigger_comment ?? t.function_comment,
      commentSource: t.trigger_comment ? "trigger" : t.function_comment ? "function" : null,
    };
  }).sort(byKeys((t) => t.table, (t) => t.name));

  return {
    tables,
    foreignKeys,
    triggers,
    deletePolicies: policyRows.map((p) => ({ ...p })).sort(byKeys((p) => p.table, (p) => p.name)),
    keylessIdColumns: keylessRows.map((k) => ({ ...k })).sort(byKeys((k) => k.table, (k) => k.column)),
  };
}

// ---------------------------------------------------------------------------------------------
// Analysis
// ---------------------------------------------------------------------------------------------

const BLOCKING = new Set(["a", "r"]);

function cols(c: string[]): string {
  return c.join(", ");
}

export function actionText(fk: ForeignKey): string {
  switch (fk.onDelete) {
    case "c":
      return "cascade";
    case "n":
      return `set null (${cols(fk.setCols)})`;
    case "d":
      return `set default (${cols(fk.setCols)})`;
    case "r":
      return "restrict: blocks";
    default:
      return "no action: blocks";
  }
}

/** Columns a set null clears although they are declared not null (such a key makes its parent undeletable). */
function setNullOnNotNull(fk: ForeignKey): string[] {
  return fk.onDelete === "n" ? fk.setCols.filter((c) => fk.notNullCols.includes(c)) : [];
}

function childrenOf(cat: DeletionCatalog, table: string): ForeignKey[] {
  return cat.foreignKeys.filter((f) => f.parent === table).sort(byKeys((f) => f.child, (f) => f.name));
}

/** The tables that are referenced but reference nothing else: where the trees start. */
function roots(cat: DeletionCatalog): string[] {
  const referencing = new Set(cat.foreignKeys.filter((f) => f.child !== f.parent).map((f) => f.child));
  const referenced = new Set(cat.foreignKeys.map((f) => f.parent));
  const all = [...referenced].filter((t) => !referencing.has(t)).sort(cmp);
  return ["workspaces", ...all.filter((t) => t !== "workspaces")].filter((t) => referenced.has(t));
}

/** An ASCII tree of the cascade, expanded through cascades only (set null keeps the row). */
export function renderTree(cat: DeletionCatalog, root: string, reached = new Set<string>()): string {
  const lines: [string, string][] = [[root, ""]];
  reached.add(root);
  const walk = (table: string, prefix: string, path: string[]) => {
    const kids = childrenOf(cat, table);
    kids.forEach((fk, i) => {
      const last = i === kids.length - 1;
      const cycle = fk.onDelete === "c" && path.includes(fk.child);
      const warn = setNullOnNotNull(fk);
      lines.push([
        `${prefix}${last ? "└── " : "├── "}${fk.child} (${cols(fk.childCols)})`,
        actionText(fk) + (cycle ? ", back to an ancestor" : "") +
        (warn.length ? `  !! ${cols(warn)} is not null` : ""),
      ]);
      reached.add(fk.child);
      if (fk.onDelete === "c" && !cycle) walk(fk.child, prefix + (last ? "    " : "│   "), [...path, fk.child]);
    });
  };
  walk(root, "", [root]);
  const width = Math.max(...lines.map(([l]) => [...l].length));
  return lines.map(([l, r]) => (r ? l + " ".repeat(width - [...l].length + 2) + r : l)).join("\n");
}

export interface DeleteEffect {
  /** table → the chains of tables through which the delete reaches it */
  cascade: Map<string, string[]>;
  /** "table.col, col" → chains */
  setNull: Map<string, string[]>;
  /** table → chains (a no action or restrict key into a row the delete removes) */
  blockedBy: Map<string, string[]>;
  /** foreign keys whose action fires, in walk order */
  edges: ForeignKey[];
}

/** Every table a delete of one row of `table` reaches, and how, walking pg_constraint. */
export function deleteEffect(cat: DeletionCatalog, table: string): DeleteEffect {
  const effect: DeleteEffect = { cascade: new Map(), setNull: new Map(), blockedBy: new Map(), edges: [] };
  const add = (m: Map<string, string[]>, key: string, chain: string) => {
    const list = m.get(key) ?? [];
    if (!list.includes(chain)) list.push(chain);
    m.set(key, list);
  };
  const walk = (t: string, path: string[]) => {
    if (path.length > 12) throw new Error(`foreign keys nest deeper than 12 levels from ${table}`);
    for (const fk of childrenOf(cat, t)) {
      const chain = [...path, fk.child].join(" → ");
      effect.edges.push(fk);
      if (fk.onDelete === "c") {
        add(effect.cascade, fk.child, chain);
        if (!path.includes(fk.child)) walk(fk.child, [...path, fk.child]);
      } else if (fk.onDelete === "n" || fk.onDelete === "d") {
        add(effect.setNull, `${fk.child}.${cols(fk.setCols)}`, fk.onDelete === "d" ? `${chain} (set default)` : chain);
      } else if (BLOCKING.has(fk.onDelete)) {
        add(effect.blockedBy, fk.child, `${chain} (${fk.name}, ${actionText(fk)})`);
      }
    }
  };
  walk(table, [table]);
  return effect;
}

/** The triggers a delete fires: on the row itself, on every cascaded row, on every set-null update. */
export function triggersFiredByDelete(cat: DeletionCatalog, table: string, effect: DeleteEffect) {
  const fired: { trigger: Trigger; because: string }[] = [];
  const seen = new Set<string>();
  const push = (t: Trigger, because: string) => {
    const key = `${t.table}.${t.name}`;
    if (seen.has(key)) return;
    seen.add(key);
    fired.push({ trigger: t, because });
  };
  for (const t of cat.triggers) {
    if (t.table === table && t.events.includes("DELETE")) push(t, "the delete itself");
  }
  for (const fk of effect.edges) {
    for (const t of cat.triggers.filter((x) => x.table === fk.child)) {
      if (fk.onDelete === "c" && t.events.includes("DELETE")) {
        push(t, `cascade from ${fk.parent}`);
      } else if (
        (fk.onDelete === "n" || fk.onDelete === "d") && t.events.includes("UPDATE") &&
        (t.updateCols.length === 0 || t.updateCols.some((c) => fk.setCols.includes(c)))
      ) {
        push(t, `${actionText(fk)} from ${fk.parent}`);
      }
    }
  }
  return fired.sort(byKeys((f) => f.trigger.table === table ? "" : f.trigger.table, (f) => f.trigger.name));
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

function oneLine(s: string | null): string {
  return (s ?? "").replace(/\s+/g, " ").trim();
}

function cell(s: string): string {
  return s.replaceAll("|", "\\|");
}

function triggerWhen(t: Trigger): string {
  const events = t.events.map((e) => e === "UPDATE" && t.updateCols.length ? `UPDATE OF ${cols(t.updateCols)}` : e);
  return `${t.timing} ${events.join(" OR ")}, per ${t.level}${t.when ? ` WHEN (${t.when})` : ""}${
    t.enabled ? "" : " (disabled)"
  }`;
}

function triggerRule(t: Trigger): string {
  return t.comment ? oneLine(t.comment) : "_(no comment on the trigger or its function)_";
}

/** Trigger comments the document would like to show but cannot: nobody wrote them yet. */
export function uncommentedTriggers(cat: DeletionCatalog): Trigger[] {
  return cat.triggers.filter((t) => !t.comment);
}

function renderMarkdown(cat: DeletionCatalog): string {
  const out: string[] = [];
  const p = (...lines: string[]) => out.push(...lines);

  p(
    "<!-- Generated by `npm run docs` (scripts/deletion-docs.ts) from the live catalog. Do not edit by hand:",
    "     docs/deletion-rules.test.ts fails when this file differs from what the migrations produce. -->",
    "",
    "# Deletion rules",
    "",
    "What deleting a row does in Herald, read from the database itself: every foreign key's `on delete` " +
      "action from `pg_constraint` (composite keys and PostgreSQL 15 `set null (column)` lists included), " +
      "the triggers that apply Herald's cancellation rules from `pg_trigger`, and the row-level security " +
      "policies that decide who may delete. `preview_delete(entity, id)` walks the same foreign keys at " +
      "run time and counts the rows; this document shows the shape.",
    "",
    "Reading the actions: **cascade** deletes the referencing rows too (and goes on from them); " +
      "**set null (cols)** keeps the referencing rows and clears only those columns; **no action** and " +
      "**restrict** make the delete fail while a referencing row remains.",
    "",
    "## Cascade tree",
    "",
    "From `workspaces` down. Each line is a foreign key: the referencing table, its key columns, and the " +
      "key's `on delete` action. The tree goes on below cascades only: a set null keeps the row, so " +
      "nothing below it is touched.",
    "",
    "```",
  );
  const reached = new Set<string>();
  const rootList = roots(cat);
  p(renderTree(cat, "workspaces", reached), "```", "");

  const otherRoots = rootList.filter((r) => r !== "workspaces");
  if (otherRoots.length) {
    p(
      "### Other roots",
      "",
      "Tables outside the workspace tree that other rows reference. `auth.users` belongs to Supabase Auth; " +
        "deleting a user goes through these keys.",
      "",
      "```",
    );
    p(otherRoots.map((r) => renderTree(cat, r, reached)).join("\n\n"), "```", "");
  }
  const unreached = [...cat.tables.keys()].filter((t) => !reached.has(t)).sort(cmp);
  if (unreached.length) {
    p("### Tables without foreign keys", "");
    for (const t of unreached) {
      const c = cat.tables.get(t)?.comment;
      p(`- \`${t}\`${c ? ` — ${oneLine(c)}` : ""}`);
    }
    p("");
  }

  p("## What each delete does", "");
  for (const { entity, table } of DELETABLE_ENTITIES) {
    if (!cat.tables.has(table)) throw new Error(`table ${table} of entity ${entity} is not in the catalog`);
    const effect = deleteEffect(cat, table);
    p(`### ${entity} (\`${table}\`)`, "");
    const tc = cat.tables.get(table)?.comment;
    if (tc) p(`> ${oneLine(tc)}`, "");

    p("**Deleted with it (cascade):**", "");
    if (effect.cascade.size === 0) p("- nothing");
    for (const [t, chains] of [...effect.cascade].sort(byKeys(([k]) => k))) {
      p(`- \`${t}\` — via ${chains.sort(cmp).map((c) => `${c}`).join("; ")}`);
    }
    p("", "**Kept, with a column cleared (set null):**", "");
    if (effect.setNull.size === 0) p("- nothing");
    for (const [k, chains] of [...effect.setNull].sort(byKeys(([x]) => x))) {
      p(`- \`${k}\` — via ${chains.sort(cmp).join("; ")}`);
    }
    p("", "**Blocked by:**", "");
    if (effect.blockedBy.size === 0) {
      p("- nothing: no `no action` or `restrict` foreign key points into the rows this delete removes");
    }
    for (const [t, chains] of [...effect.blockedBy].sort(byKeys(([x]) => x))) {
      p(`- \`${t}\` rows outside the delete — via ${chains.sort(cmp).join("; ")}`);
    }

    const policies = cat.deletePolicies.filter((x) => x.table === table);
    p("", "**Who may delete (row-level security on `" + table + "`):**", "");
    if (!cat.tables.get(table)?.rls) p("- row-level security is off on this table");
    else if (policies.length === 0) p("- no DELETE policy: clients cannot delete directly");
    for (const pol of policies) {
      p(
        `- \`${pol.name}\` (${pol.command}, ${pol.permissive ? "permissive" : "restrictive"}, to ${
          pol.roles.join(", ")
        }): \`${oneLine(pol.using ?? "true")}\``,
      );
    }

    const own = cat.triggers.filter((t) => t.table === table);
    p("", `**Triggers on \`${table}\`** (all events: soft deletes and status changes are updates):`, "");
    if (own.length === 0) p("- none");
    for (const t of own) p(`- \`${t.name}\` — ${triggerWhen(t)}, \`${t.fn}\`: ${triggerRule(t)}`);

    const fired = triggersFiredByDelete(cat, table, effect).filter((f) => f.trigger.table !== table);
    p("", "**Triggers the cascade fires on other tables:**", "");
    if (fired.length === 0) p("- none");
    for (const { trigger: t, because } of fired) {
      p(`- \`${t.table}.${t.name}\` (${because}) — ${triggerWhen(t)}, \`${t.fn}\`: ${triggerRule(t)}`);
    }
    p("");
  }

  p(
    "## Triggers by table",
    "",
    "Every trigger on Herald's tables, with the rule it applies (its comment, or its function's).",
    "",
    "| table | trigger | fires | function | rule |",
    "| --- | --- | --- | --- | --- |",
  );
  for (const t of cat.triggers) {
    p(`| \`${t.table}\` | \`${t.name}\` | ${triggerWhen(t)} | \`${t.fn}\` | ${cell(triggerRule(t))} |`);
  }
  p(
    "",
    "## All foreign keys",
    "",
    "| table | columns | references | on delete | constraint |",
    "| --- | --- | --- | --- | --- |",
  );
  for (const fk of cat.foreignKeys) {
    const warn = setNullOnNotNull(fk);
    p(
      `| \`${fk.child}\` | ${cols(fk.childCols)} | \`${fk.parent}\` (${cols(fk.parentCols)}) | ${actionText(fk)}${
        warn.length ? ` **(sets not-null ${cols(warn)} to null: fails)**` : ""
      }${fk.deferrable ? ", deferrable" : ""} | \`${fk.name}\` |`,
    );
  }
  p("", "## `*_id` columns without a foreign key", "");
  if (cat.keylessIdColumns.length === 0) p("None.");
  for (const k of cat.keylessIdColumns) {
    p(`- \`${k.table}.${k.column}\` — ${k.comment ? oneLine(k.comment) : "**no comment says why**"}`);
  }
  return out.join("\n") + "\n";
}

/** Formats with deno fmt, so a `deno fmt` over the repository leaves the committed file alone. */
export async function formatMarkdown(md: string): Promise<string> {
  const r = await run(DENO_BIN, ["fmt", "--ext", "md", "-"], { stdin: md, cwd: ROOT });
  return r.stdout;
}

/** docs/deletion-rules.md as the catalog behind `sql` says it should read. */
export async function renderDeletionRules(sql: Sql): Promise<string> {
  return await formatMarkdown(renderMarkdown(await readDeletionCatalog(sql)));
}

export interface DeletionDocsCheck {
  current: boolean;
  rendered: string;
  committed: string;
  /** First differing line (1-based) and both versions of it, when stale. */
  firstDifference?: { line: number; committed: string; rendered: string };
}

/** Compares the committed document with a fresh rendering from `sql`'s catalog. */
export async function checkDeletionDocs(sql: Sql, file = DELETION_DOCS_FILE): Promise<DeletionDocsCheck> {
  const rendered = await renderDeletionRules(sql);
  const committed = await Deno.readTextFile(file).catch(() => "");
  if (rendered === committed) return { current: true, rendered, committed };
  const a = committed.split("\n");
  const b = rendered.split("\n");
  let i = 0;
  while (i < Math.max(a.length, b.length) && a[i] === b[i]) i++;
  return {
    current: false,
    rendered,
    committed,
    firstDifference: { line: i + 1, committed: a[i] ?? "(end of file)", rendered: b[i] ?? "(end of file)" },
  };
}

if (import.meta.main) {
  const checkOnly = Deno.args.includes("--check");
  const stack = new Stack({ db: 54355, functions: 0, sandbox: 0 }, `/var/tmp/herald/docs-${Deno.pid}`, true);
  let code = 0;
  try {
    await stack.upDatabase(() => {});
    const sql = postgres(stack.cluster.url, { max: 1, onnotice: () => {} });
    try {
      if (checkOnly) {
        const r = await checkDeletionDocs(sql);
        if (!r.current) {
          const d = r.firstDifference!;
          console.error(`${STALE_MESSAGE}\n  line ${d.line}\n  committed: ${d.committed}\n  rendered:  ${d.rendered}`);
          code = 1;
        } else console.log("docs/deletion-rules.md is current");
      } else {
        const cat = await readDeletionCatalog(sql);
        await Deno.mkdir(`${ROOT}/docs`, { recursive: true });
        await Deno.writeTextFile(DELETION_DOCS_FILE, await formatMarkdown(renderMarkdown(cat)));
        console.log(`wrote ${DELETION_DOCS_FILE}`);
        const missing = uncommentedTriggers(cat);
        if (missing.length) {
          console.log(`${missing.length} trigger(s) have no comment on the trigger or its function:`);
          for (const t of missing) console.log(`  ${t.table}.${t.name} (${t.fn})`);
        }
      }
    } finally {
      await sql.end({ timeout: 1 });
    }
  } finally {
    await stack.cluster.destroy();
  }
  Deno.exit(code);
}
