// Two checks that keep the pgTAP suite shaped like the schema, so a rule is one hop from its test:
//
//   layout     every migration `<timestamp>_<stem>.sql` has its `<stem>.test.sql`, and every
//              test file is a migration's, the harness, or one of the few cross-cutting files;
//   untested   every function of public and herald (trigger functions included, extensions'
//              excluded) is named by the test file of the migration that creates it (by any
//              pgTAP file, for one no migration's text creates): `herald.<name>` for Herald's
//              internals, `<name>` or `public.<name>` for the API. A trigger function is named
//              in the comment beside the statements that fire it.
//
// Both read the tree and the catalog at run time, so a migration or function added later is
// covered without editing this file.

import { ROOT } from "./config.ts";
import { run } from "./proc.ts";

export const MIGRATIONS_DIR = `${ROOT}/supabase/migrations`;
export const PGTAP_DIR = `${ROOT}/supabase/tests/database`;

/** Installs the test helpers; sorts before every other file. */
export const HARNESS = "000-setup-tests-hooks.sql";

/** Files that test rules holding across every migration rather than what one of them defines. */
export const CROSS_CUTTING = [
  "catalog", // catalog-wide rules: RLS everywhere, no set null on a not-null column, keyed *_id columns
  "cross_workspace", // one workspace against another's rows through every RPC and table, and bad input
  "randomized", // random operations with the invariants checked after each
  "orphans", // no foreign key of any table points at a missing row after every kind of deletion
];

const MIGRATION_NAME = /^\d+_(.+)\.sql$/;

/** The stem of a migration file name (`20261121221100_dispatch.sql` → `dispatch`), or null. */
export function migrationStem(file: string): string | null {
  return MIGRATION_NAME.exec(file)?.[1] ?? null;
}

/** What is wrong with the test files' names against the migrations', one line per problem. */
export function layoutProblems(migrationFiles: string[], testFiles: string[]): string[] {
  const stems = migrationFiles.map(migrationStem).filter((s): s is string => s !== null);
  const present = new Set(testFiles);
  const problems = stems
    .filter((stem) => !present.has(`${stem}.test.sql`))
    .map((stem) => `missing ${stem}.test.sql for the migration …_${stem}.sql`);
  const allowed = new Set([HARNESS, ...[...stems, ...CROSS_CUTTING].map((s) => `${s}.test.sql`)]);
  for (const file of testFiles) {
    if (!allowed.has(file)) {
      problems.push(`${file} is neither <migration stem>.test.sql nor a cross-cutting file (${CROSS_CUTTING.join(", ")})`);
    }
  }
  return problems;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * True if the SQL text names the function `schema.name`: Herald's internals by their qualified
 * name (tests always call them so, and a bare word like `enroll` or `spread` proves nothing),
 * the API by its name with or without `public.`.
 */
export function namesFunction(qualified: string, sql: string): boolean {
  const [schema, name] = qualified.split(".");
  const pattern = schema === "public"
    ? `(?<![\\w.])(?:public\\.)?${escapeRegExp(name)}(?!\\w)`
    : `(?<![\\w.])${escapeRegExp(schema)}\\.${escapeRegExp(name)}(?!\\w)`;
  return new RegExp(pattern, "i").test(sql);
}

/** The functions (`schema.name`) that none of the texts names. */
export function unnamedFunctions(functions: string[], texts: string[]): string[] {
  return functions.filter((f) => !texts.some((t) => namesFunction(f, t)));
}

/**
 * The stem of the last migration (in file-name order, the order they run in) whose text creates
 * the function `schema.name`, or null if none does.
 */
export function definingStem(qualified: string, migrations: Map<string, string>): string | null {
  const [schema, name] = qualified.split(".").map(escapeRegExp);
  const creates = new RegExp(`create\\s+(?:or\\s+replace\\s+)?function\\s+${schema}\\.${name}\\s*\\(`, "i");
  const files = [...migrations.keys()].sort().filter((file) => creates.test(migrations.get(file)!));
  return files.length ? migrationStem(files[files.length - 1]) : null;
}

/**
 * The functions not named where a reader looks for their test: in `<stem>.test.sql` of the
 * migration that creates them, or, for one no migration's text creates, in any test file.
 */
export function untestedIn(functions: string[], migrations: Map<string, string>, tests: Map<string, string>): string[] {
  const problems: string[] = [];
  for (const f of functions) {
    const stem = definingStem(f, migrations);
    if (stem === null) {
      if (unnamedFunctions([f], [...tests.values()]).length) problems.push(`${f}: named by no test file`);
    } else if (!namesFunction(f, tests.get(`${stem}.test.sql`) ?? "")) {
      problems.push(`${f} (…_${stem}.sql): not named in ${stem}.test.sql`);
    }
  }
  return problems;
}

async function fileNames(dir: string, suffix: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.isFile && e.name.endsWith(suffix)) names.push(e.name);
  return names.sort();
}

/** The .sql files below dir (recursively), by name relative to dir, with their text. */
async function sqlFiles(dir: string, prefix = ""): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for await (const e of Deno.readDir(dir)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) for (const [k, v] of await sqlFiles(path, `${prefix}${e.name}/`)) files.set(k, v);
    else if (e.isFile && e.name.endsWith(".sql")) files.set(`${prefix}${e.name}`, await Deno.readTextFile(path));
  }
  return files;
}

/** The layout problems of the tree as it is now. */
export async function testLayout(): Promise<string[]> {
  return layoutProblems(await fileNames(MIGRATIONS_DIR, ".sql"), await fileNames(PGTAP_DIR, ".sql"));
}

/** Every function of public and herald in the database at dbUrl that its migration's test file does not name. */
export async function untestedFunctions(dbUrl: string): Promise<string[]> {
  const r = await run("psql", [
    "-X",
    "-q",
    "-t",
    "-A",
    "-v",
    "ON_ERROR_STOP=1",
    "-d",
    dbUrl,
    "-c",
    `select distinct n.nspname || '.' || p.proname
     from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
     where n.nspname in ('public', 'herald')
       and not exists (select 1 from pg_catalog.pg_depend d
                       where d.classid = 'pg_catalog.pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
     order by 1`,
  ]);
  const functions = r.stdout.split("\n").map((l) => l.trim()).filter(Boolean);
  return untestedIn(functions, await sqlFiles(MIGRATIONS_DIR), await sqlFiles(PGTAP_DIR));
}
