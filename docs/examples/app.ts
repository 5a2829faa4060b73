// Calling Herald from an app with supabase-js: the typed client, each RPC with its result, errors,
// and live message status through Realtime.
//
// `npm test` type-checks this file against the generated database types (`deno check`), so a
// renamed RPC, parameter or column breaks the build rather than the reader; and the README's
// "Calling Herald from an app" section shows the regions marked below, which a test compares with
// this file line for line.

// #region client
import { createClient, FunctionsHttpError, type PostgrestError } from "@supabase/supabase-js";
// The generated types: copy supabase/functions/_shared/database.types.ts into your app, or run
// `supabase gen types typescript` against your project.
import type { Database } from "../../supabase/functions/_shared/database.types.ts";

type Tables = Database["public"]["Tables"];
export type Message = Tables["messages"]["Row"];

/** Signed in as a member: every call runs as that user, so RLS and each RPC's role checks apply. */
export async function signIn(url: string, anonKey: string, email: string, password: string) {
  const supabase = createClient<Database>(url, anonKey);
  const { error } = await supabase.auth.signInWithPassword({ email, password });
  if (error) throw error;
  return supabase;
}
export type Herald = Awaited<ReturnType<typeof signIn>>;
// #endregion client

// #region setup
/** A workspace ready to send: its owner is the caller; a default SMS sender; one contact. */
export async function setUp(supabase: Herald) {
  const { data: workspaceId, error: e1 } = await supabase.rpc("create_workspace", {
    name: "Acme Dental",
    timezone: "America/New_York",
  });
  if (e1) throw e1;
  const { error: e2 } = await supabase.from("senders").insert({
    workspace_id: workspaceId,
    channel: "sms",
    phone_number: "+15005550006",
    status: "connected",
    is_default: true,
  });
  if (e2) throw e2;
  const { data: contact, error: e3 } = await supabase.from("contacts")
    .insert({ workspace_id: workspaceId, phone: "+14155550123", first_name: "Ada", timezone: "Europe/London" })
    .select("id")
    .single();
  if (e3) throw e3;
  return { workspaceId, contactId: contact.id };
}
// #endregion setup

// #region rpcs
export async function tour(supabase: Herald, workspaceId: string, contactId: string, sequenceId: string) {
  // schedule_message → the message's id (uuid). Optional: send_at, channel, idempotency_key, appointment_id,
  // category ('marketing' | 'transactional'), template_id, template_variables, expires_at.
  const { data: messageId } = await supabase.rpc("schedule_message", {
    contact_id: contactId,
    body: "Your order shipped.",
    send_at: new Date(Date.now() + 3600_000).toISOString(),
    idempotency_key: "order-1042-shipped", // the same key returns the same message
  });

  // cancel_message → true if cancelled now, false if already on its way or final.
  const { data: cancelled } = await supabase.rpc("cancel_message", { message_id: messageId! });

  // retry_message → a new message's id, for a failed or undelivered one (else 55000).
  await supabase.rpc("retry_message", { message_id: messageId! });

  // enroll_contact → the enrollment's id; schedules step 1 of an active sequence.
  const { data: enrollmentId } = await supabase.rpc("enroll_contact", { sequence_id: sequenceId, contact_id: contactId });

  // take_lead → { contact_id, assigned_to, already_taken, cancelled: { messages, sequence_enrollments } }.
  const { data: takeover } = await supabase.rpc("take_lead", { contact_id: contactId });
  await supabase.rpc("release_lead", { contact_id: contactId });

  // preview_delete → per table: what a delete would cancel, cascade to, set null or be blocked by.
  const { data: impact } = await supabase.rpc("preview_delete", { entity: "contact", id: contactId });

  // delete_contact → { mode, cancelled, deleted, set_null, deletion_id, … }; soft unless hard: true.
  const { data: deletion } = await supabase.rpc("delete_contact", { contact_id: contactId, hard: false });
  await supabase.rpc("restore_contact", { contact_id: contactId });

  // prepare_queue → how many new leads were enrolled for the day (admins).
  const { data: queued } = await supabase.rpc("prepare_queue", { workspace_id: workspaceId });

  // set_automation: pausing holds pending messages (never cancels them).
  await supabase.rpc("set_automation", { workspace_id: workspaceId, enabled: false });
  await supabase.rpc("set_automation", { workspace_id: workspaceId, enabled: true });

  // cleanup_stale_senders → how many unconnected, number-less senders were removed.
  const { data: removed } = await supabase.rpc("cleanup_stale_senders", { older_than: "1 day" });

  return { messageId, cancelled, enrollmentId, takeover, impact, deletion, queued, removed };
}

/** The edge functions: the client sends the user's JWT. */
export async function functions(supabase: Herald, contactId: string) {
  // delete-contact: a hard delete that also erases Twilio's copies of the messages.
  const { data: erased } = await supabase.functions.invoke<{ provider_erasure: { requested: number; erased: number } }>(
    "delete-contact",
    { body: { contact_id: contactId, hard: true } },
  );
  // export-queue: CSV of the caller's messages, send_at within the workspace's local days.
  const { data: csv } = await supabase.functions.invoke<string>("export-queue?from=2026-12-01&to=2026-12-07", {
    method: "GET",
  });
  return { erased, csv };
}
// #endregion rpcs

// #region errors
/** error.code is the SQLSTATE Herald raises; error.message says what to do; error.hint, when set, how. */
export function explain(error: PostgrestError): string {
  switch (error.code) {
    case "42501": // not signed in, not a member, or role too low
      return `Not allowed: ${error.message}`;
    case "P0002": // no such row, or not yours: the same answer, so nothing leaks across workspaces
      return "Not found.";
    case "23514": // a check constraint: the message is written for a person
    case "22023": // an invalid parameter
      return error.message;
    case "55000": // the row is in the wrong state (contact deleted or opted out, sequence not active…)
      return error.hint ? `${error.message}. ${error.hint}` : error.message;
    case "23505": // a duplicate (a live contact with that phone, an idempotency key reused)
      return `Already exists: ${error.details ?? error.message}`;
    default:
      return "Something went wrong.";
  }
}

export async function addContact(supabase: Herald, workspaceId: string, phone: string) {
  const { data, error } = await supabase.from("contacts").insert({ workspace_id: workspaceId, phone }).select("id").single();
  if (error) return { error: explain(error) }; // "The phone number must be in E.164 format: …" for 415-555-0123
  return { id: data.id };
}

/** The edge functions answer { error: { code, message } } with an HTTP status. */
export async function functionError(error: unknown): Promise<string> {
  if (error instanceof FunctionsHttpError) {
    const { error: body } = await (error.context as Response).json() as { error: { code: string; message: string } };
    return `${body.code}: ${body.message}`; // e.g. "invalid_body: contact_id: required"
  }
  return String(error);
}
// #endregion errors

// #region realtime
/** Live status of a contact's messages: one callback per change (RLS decides what a member sees). */
export function watchMessages(supabase: Herald, contactId: string, onChange: (message: Message) => void) {
  const channel = supabase
    .channel(`messages:${contactId}`)
    .on<Message>(
      "postgres_changes",
      { event: "*", schema: "public", table: "messages", filter: `contact_id=eq.${contactId}` },
      (payload) => {
        if (payload.eventType !== "DELETE") onChange(payload.new); // scheduled → queued → sending → sent → delivered
      },
    )
    .subscribe();
  return () => supabase.removeChannel(channel);
}
// #endregion realtime
