// Local users for `npm run stack -- user`: what signing up and being invited do on Supabase, done
// directly as the stack's superuser, since locally there is no GoTrue to sign anyone up.

import postgres from "postgres";

export const ROLES = ["owner", "admin", "agent"] as const;
export type Role = typeof ROLES[number];

export interface UserRequest {
  email: string;
  /** With a workspace, the user becomes a member (as `role`, default agent), or changes to `role`. */
  workspaceId?: string;
  role?: Role;
  /** Another database than this checkout's stack (say, `supabase start`'s, or $DB). */
  dbUrl?: string;
}

export interface LocalUser {
  id: string;
  email: string;
  created: boolean;
  membership: { workspaceId: string; workspaceName: string; role: Role; previousRole: Role | null } | null;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const USER_USAGE =
  "npm run stack -- user <email> [--workspace <workspace id>] [--role owner|admin|agent] [--db-url <postgres url>]";

/** `user <email> [--workspace <id>] [--role <role>] [--db-url <url>]`, checked before anything touches the database. */
export function parseUserArgs(args: string[]): UserRequest {
  let email: string | undefined;
  let workspaceId: string | undefined;
  let role: string | undefined;
  let dbUrl: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const [flag, inline] = arg.startsWith("--") ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    const value = () => {
      const v = inline ?? args[++i];
      if (v === undefined || v === "") throw new Error(`${flag} needs a value; usage: ${USER_USAGE}`);
      return v;
    };
    if (flag === "--workspace") workspaceId = value();
    else if (flag === "--role") role = value();
    else if (flag === "--db-url") dbUrl = value();
    else if (flag.startsWith("--")) throw new Error(`unknown option ${flag}; usage: ${USER_USAGE}`);
    else if (email === undefined) email = arg;
    else throw new Error(`one email only (got ${email} and ${arg}); usage: ${USER_USAGE}`);
  }
  if (!email) throw new Error(`an email is required; usage: ${USER_USAGE}`);
  if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) throw new Error(`'${email}' is not an email address`);
  if (workspaceId !== undefined && !UUID.test(workspaceId)) {
    throw new Error(`--workspace takes a workspace id (a uuid), not '${workspaceId}'`);
  }
  if (role !== undefined && !(ROLES as readonly string[]).includes(role)) {
    throw new Error(`--role is one of ${ROLES.join(", ")}, not '${role}'`);
  }
  if (role !== undefined && workspaceId === undefined) {
    throw new Error("--role applies to a membership: give --workspace <id> too");
  }
  if (dbUrl !== undefined && !/^postgres(ql)?:\/\//.test(dbUrl)) {
    throw new Error(`--db-url takes a postgresql:// URL, not '${dbUrl}'`);
  }
  // GoTrue keeps emails in lower case; so does this, so the same address is the same user.
  return { email: email.toLowerCase(), workspaceId, role: role as Role | undefined, dbUrl };
}

/**
 * The auth user with this email (created if there is none, as a confirmed email sign-up) and,
 * with a workspace, its membership there: added (as an agent unless a role is asked for), or its
 * role changed to the one asked for.
 * One transaction: a refused role change (the last owner cannot be demoted) changes nothing.
 */
export async function ensureLocalUser(dbUrl: string, req: UserRequest): Promise<LocalUser> {
  const sql = postgres(dbUrl, { max: 1, onnotice: () => {} });
  try {
    return await sql.begin(async (tx) => {
      const [inserted] = await tx`
        insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, email_confirmed_at)
        values (gen_random_uuid(), 'authenticated', 'authenticated', ${req.email},
                '{"provider":"email","providers":["email"]}', '{}', now())
        on conflict (email) do nothing
        returning id::text`;
      const [{ id }] = inserted ? [inserted] : await tx`select id::text from auth.users where email = ${req.email}`;
      if (!req.workspaceId) return { id, email: req.email, created: !!inserted, membership: null };

      const [workspace] = await tx`select name from public.workspaces where id = ${req.workspaceId}`;
      if (!workspace) throw new Error(`there is no workspace ${req.workspaceId} (select id, name from workspaces)`);
      const [before] = await tx`
        select role from public.workspace_members where workspace_id = ${req.workspaceId} and user_id = ${id}`;
      const [{ role }] = await tx`
        insert into public.workspace_members (workspace_id, user_id, role)
        values (${req.workspaceId}, ${id}, ${req.role ?? "agent"})
        on conflict (workspace_id, user_id) do update set role = coalesce(${req.role ?? null}, workspace_members.role)
        returning role`;
      return {
        id,
        email: req.email,
        created: !!inserted,
        membership: {
          workspaceId: req.workspaceId,
          workspaceName: workspace.name,
          role,
          previousRole: before?.role ?? null,
        },
      };
    });
  } finally {
    await sql.end();
  }
}
