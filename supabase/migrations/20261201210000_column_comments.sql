/**
 * A comment on every column of every public table and view, so what an app developer reads in
 * Supabase's table editor, in `psql \d+` or in the generated API docs says what each field holds,
 * who writes it and what a null means. The earlier migrations commented only the columns with a
 * rule to explain; the rest were left for a reader to guess (is `attempts` a limit or a count?
 * is `day` UTC or local?).
 *
 * A catalog test (supabase/tests/database/column_comments.test.sql) fails for any public column
 * without a comment, so a column added later comes with its own.
 */

/** Section - tenancy */
comment on column public.workspaces.id is 'The workspace''s id; every other row carries it as workspace_id.';
comment on column public.workspaces.name is 'Display name, 1 to 200 characters.';
comment on column public.workspaces.created_at is 'When the workspace was created (create_workspace()).';
comment on column public.workspaces.updated_at is 'When a setting last changed; kept by trigger.';

comment on column public.workspace_members.workspace_id is 'The workspace the user belongs to.';
comment on column public.workspace_members.user_id is 'The member (auth.users). Deleting the user removes the membership.';
comment on column public.workspace_members.role is 'owner, admin or agent. Agents work contacts and messages; admins also manage senders, sequences, members and queue settings; owners also change roles and delete the workspace.';
comment on column public.workspace_members.created_at is 'When the user joined the workspace.';

/** Section - contacts */
comment on column public.contacts.id is 'The contact''s id.';
comment on column public.contacts.workspace_id is 'The workspace the contact belongs to.';
comment on column public.contacts.email is 'Optional e-mail address; Herald only stores it (for exports and the app).';
comment on column public.contacts.first_name is 'Fills {{first_name}} in templates; at most 100 characters.';
comment on column public.contacts.last_name is 'Fills {{last_name}} in templates; at most 100 characters.';
comment on column public.contacts.lead_status is 'Where the lead stands: new, queued (by prepare_queue()), contacted, engaged, booked, won, lost or unqualified. prepare_queue() picks new leads.';
comment on column public.contacts.last_inbound_at is 'When the contact last wrote in (any inbound message, STOP included).';
comment on column public.contacts.created_at is 'When the contact was added; prepare_queue() takes the oldest new leads first.';
comment on column public.contacts.updated_at is 'When the row last changed; kept by trigger.';

comment on column public.contact_tags.workspace_id is 'The contact''s workspace.';
comment on column public.contact_tags.contact_id is 'The tagged contact.';
comment on column public.contact_tags.tag is 'The label, 1 to 64 characters; a contact has each tag once.';
comment on column public.contact_tags.created_at is 'When the tag was added.';

comment on column public.contact_variables.workspace_id is 'The contact''s workspace.';
comment on column public.contact_variables.contact_id is 'The contact the value belongs to.';
comment on column public.contact_variables.key is 'The KEY of {{var.KEY}}: lowercase letters, digits and _, starting with a letter.';
comment on column public.contact_variables.value is 'What {{var.KEY}} renders to for this contact; at most 1000 characters.';

comment on column public.contact_activities.id is 'Order of the activity within the history.';
comment on column public.contact_activities.workspace_id is 'The contact''s workspace.';
comment on column public.contact_activities.contact_id is 'The contact it happened to.';
comment on column public.contact_activities.kind is 'What happened: soft_deleted, restored, opted_out, opted_in, taken_over, released, replied, queued…';
comment on column public.contact_activities.detail is 'Kind-specific facts, e.g. {"cancelled_messages": 3, "cancelled_enrollments": 1} for a takeover.';
comment on column public.contact_activities.at is 'When it happened.';

comment on column public.suppressions.workspace_id is 'The workspace whose messages the number must not receive.';
comment on column public.suppressions.phone_hash is 'Keyed hash of the suppressed number (herald.phone_hash); the number itself is not kept.';
comment on column public.suppressions.reason is 'opted_out (the contact sent STOP) or provider_unsubscribed (Twilio answered 21610).';
comment on column public.suppressions.at is 'When the number was suppressed.';

/** Section - senders and campaigns */
comment on column public.senders.id is 'The sender''s id; messages.sender_id names it.';
comment on column public.senders.workspace_id is 'The workspace that sends from it.';
comment on column public.senders.channel is 'sms (a Twilio number) or whatsapp (a WhatsApp sender).';
comment on column public.senders.phone_number is 'The E.164 number messages go out from; null while a WhatsApp sender is still connecting. A default sender needs one.';
comment on column public.senders.status is 'connecting, qr_pending (WhatsApp waiting for a QR scan), connected or disconnected. Senders that are not connected and have no number are removed by cleanup_stale_senders().';
comment on column public.senders.created_at is 'When the sender was added.';
comment on column public.senders.last_seen_at is 'When the sender was last seen alive, written by the app or the WhatsApp bridge. cleanup_stale_senders() removes an unconnected, number-less sender once this (or created_at, while null) is older than its threshold.';

comment on column public.whatsapp_groups.id is 'The group''s id in Herald.';
comment on column public.whatsapp_groups.workspace_id is 'The workspace of the sender that sees the group.';
comment on column public.whatsapp_groups.sender_id is 'The WhatsApp sender the group is reached through; the group goes when the sender goes.';
comment on column public.whatsapp_groups.name is 'The group''s display name, as WhatsApp last reported it.';
comment on column public.whatsapp_groups.created_at is 'When Herald first saw the group.';

comment on column public.campaigns.id is 'The campaign''s id; messages.campaign_id names it.';
comment on column public.campaigns.workspace_id is 'The workspace running the campaign.';
comment on column public.campaigns.name is 'Display name, 1 to 200 characters.';
comment on column public.campaigns.status is 'draft, active, paused, completed or archived; managed by the app.';
comment on column public.campaigns.created_at is 'When the campaign was created.';
comment on column public.campaigns.updated_at is 'When the row last changed; kept by trigger.';

comment on column public.campaign_groups.workspace_id is 'The workspace of both the campaign and the group.';
comment on column public.campaign_groups.campaign_id is 'The campaign.';
comment on column public.campaign_groups.group_id is 'A WhatsApp group the campaign targets.';

/** Section - sequences and appointments */
comment on column public.sequences.id is 'The sequence''s id; enroll_contact() and queue_settings.default_sequence_id name it.';
comment on column public.sequences.workspace_id is 'The workspace the sequence belongs to.';
comment on column public.sequences.name is 'Display name, 1 to 200 characters.';
comment on column public.sequences.status is 'draft (being written), active (takes enrollments) or archived (stops its active enrollments). Only active sequences take enrollments.';
comment on column public.sequences.created_at is 'When the sequence was created.';
comment on column public.sequences.updated_at is 'When the row last changed; kept by trigger.';

comment on column public.sequence_steps.id is 'The step''s id; messages.step_id names the step a message was scheduled for.';
comment on column public.sequence_steps.workspace_id is 'The sequence''s workspace.';
comment on column public.sequence_steps.sequence_id is 'The sequence the step belongs to.';
comment on column public.sequence_steps.position is 'Order within the sequence (1, 2, …; gaps allowed, unique per sequence).';
comment on column public.sequence_steps.delay is 'How long after the previous step was sent this one goes out; for the first step, after enrollment.';
comment on column public.sequence_steps.channel is 'sms or whatsapp: the channel the step''s message is sent on.';

comment on column public.sequence_enrollments.id is 'The enrollment''s id; enroll_contact() returns it and messages.enrollment_id names it.';
comment on column public.sequence_enrollments.workspace_id is 'The workspace of the sequence and the contact.';
comment on column public.sequence_enrollments.sequence_id is 'The sequence the contact goes through.';
comment on column public.sequence_enrollments.contact_id is 'The enrolled contact.';
comment on column public.sequence_enrollments.status is 'active, completed (the last step was sent), cancelled (stopped: reply, takeover, delete, archived sequence…) or failed (a step message failed).';
comment on column public.sequence_enrollments.enrolled_at is 'When the contact was enrolled; step 1 goes out its delay after this.';
comment on column public.sequence_enrollments.completed_at is 'When the enrollment stopped being active (completed, cancelled or failed); null while active.';
comment on column public.sequence_enrollments.updated_at is 'When the row last changed; kept by trigger.';

comment on column public.appointments.id is 'The appointment''s id; messages.appointment_id names it on its reminders.';
comment on column public.appointments.workspace_id is 'The contact''s workspace.';
comment on column public.appointments.contact_id is 'The contact the appointment is with.';
comment on column public.appointments.title is 'What the appointment is, 1 to 200 characters.';
comment on column public.appointments.starts_at is 'When it starts. Moving it moves the pending reminders by the same amount.';
comment on column public.appointments.status is 'scheduled, cancelled or completed. Cancelling or completing it cancels its pending reminders.';
comment on column public.appointments.created_at is 'When the appointment was made.';
comment on column public.appointments.updated_at is 'When the row last changed; kept by trigger.';

/** Section - messages */
comment on column public.messages.id is 'The message''s id; schedule_message() returns it.';
comment on column public.messages.workspace_id is 'The contact''s workspace.';
comment on column public.messages.contact_id is 'The recipient.';
comment on column public.messages.channel is 'sms or whatsapp.';
comment on column public.messages.body is 'The text sent, templates already filled in; 1 to 1600 characters.';
comment on column public.messages.status is 'scheduled → queued → sending → sent → delivered → read; undelivered, failed and cancelled are final. Only moves forward; every change is in message_events.';
comment on column public.messages.cancel_reason is 'Why it was cancelled (contact_deleted, contact_opted_out, human_takeover, sequence_stopped, replied, appointment_cancelled…); set exactly when status is cancelled.';
comment on column public.messages.max_attempts is 'Provider attempts allowed before a transient error fails the message; copied from the workspace when scheduled.';
comment on column public.messages.last_error_code is 'The provider''s error code of the last failed attempt (Twilio''s, e.g. 21211 invalid number, 30003 unreachable).';
comment on column public.messages.last_error is 'The provider''s (or Herald''s, e.g. no sender) last error message.';
comment on column public.messages.provider_sid is 'Twilio''s Message SID (SM…) of the attempt that was accepted.';
comment on column public.messages.enrollment_id is 'The sequence enrollment that scheduled it; null for one-off messages.';
comment on column public.messages.step_id is 'The sequence step it was scheduled for; null for one-off messages.';
comment on column public.messages.appointment_id is 'The appointment it reminds of: moving the appointment moves it, cancelling the appointment cancels it.';
comment on column public.messages.campaign_id is 'The campaign it belongs to; deleting the campaign cancels it if still pending.';
comment on column public.messages.sent_at is 'When Twilio accepted it.';
comment on column public.messages.delivered_at is 'When Twilio reported it delivered.';
comment on column public.messages.failed_at is 'When it failed or was reported undelivered.';
comment on column public.messages.cancelled_at is 'When it was cancelled.';
comment on column public.messages.created_at is 'When it was scheduled.';
comment on column public.messages.updated_at is 'When the row last changed; kept by trigger.';

comment on column public.message_attempts.id is 'The attempt''s id.';
comment on column public.message_attempts.workspace_id is 'The message''s workspace.';
comment on column public.message_attempts.message_id is 'The message this call to the provider was for.';
comment on column public.message_attempts.attempt_no is '1 for the first call, 2 for the first retry, …; unique per message.';
comment on column public.message_attempts.provider_status is 'What the provider last said about this attempt: requested (call under way), accepted, error, or Twilio''s status (queued, sent, delivered, undelivered, failed…). Never moves backwards.';
comment on column public.message_attempts.error_code is 'The provider''s error code for this attempt, if any.';
comment on column public.message_attempts.error_message is 'The provider''s error message for this attempt, if any.';
comment on column public.message_attempts.requested_at is 'When the dispatcher claimed the message for this attempt.';
comment on column public.message_attempts.responded_at is 'When the provider answered the API call.';
comment on column public.message_attempts.last_callback_at is 'When the last status callback for this attempt arrived.';

comment on column public.message_events.id is 'Order of the event within the ledger.';
comment on column public.message_events.workspace_id is 'The message''s workspace.';
comment on column public.message_events.message_id is 'The message whose status changed.';
comment on column public.message_events.from_status is 'Status before the change; null for the event that created the message.';
comment on column public.message_events.to_status is 'Status after the change; equal to from_status for a deferral or a hold.';
comment on column public.message_events.detail is 'Extra facts, e.g. {"send_at_from": …, "send_at_to": …} when send_at moved.';
comment on column public.message_events.at is 'When the change happened.';

comment on column public.provider_events.id is 'Order of arrival.';
comment on column public.provider_events.workspace_id is 'The workspace the webhook was applied to; null when it matched none.';
comment on column public.provider_events.message_id is 'The message a status callback applied to; null for inbound messages and unknown sids.';
comment on column public.provider_events.contact_id is 'The contact an inbound message came from; null for status callbacks and unknown senders.';
comment on column public.provider_events.kind is 'status (a delivery status callback) or inbound (a message from a contact).';
comment on column public.provider_events.provider_sid is 'Twilio''s Message SID the webhook is about.';
comment on column public.provider_events.provider_status is 'The MessageStatus of a status callback, lowercased.';
comment on column public.provider_events.error_code is 'The ErrorCode of a status callback, if any.';
comment on column public.provider_events.payload is 'The webhook''s form fields as received.';
comment on column public.provider_events.received_at is 'When Herald received the webhook.';

/** Section - deletions */
comment on column public.deletion_log.id is 'The deletion''s id; delete_contact() returns it as deletion_id.';
comment on column public.deletion_log.entity is 'What was deleted: workspace, contact, sequence, sender, campaign, appointment or whatsapp_group.';
comment on column public.deletion_log.mode is 'soft (deleted_at set; restorable) or hard (rows erased).';
comment on column public.deletion_log.actor is 'Who deleted: a user id, cron (retention purge), or the database role.';
comment on column public.deletion_log.at is 'When the deletion happened.';

/** Section - the lead queue */
comment on column public.queue_settings.workspace_id is 'The workspace these settings are for (one row per workspace).';
comment on column public.queue_settings.daily_capacity is 'Most new leads prepare_queue() enrolls per day.';
comment on column public.queue_settings.window_start is 'Local time (in each contact''s zone) from which first sends are spread.';
comment on column public.queue_settings.window_end is 'Local time by which first sends are spread; may be before window_start for a window across midnight.';
comment on column public.queue_settings.default_sequence_id is 'The active sequence prepare_queue() enrolls leads in; cleared if that sequence is deleted.';
comment on column public.queue_settings.updated_at is 'When the settings last changed; kept by trigger.';

comment on column public.queue_entries.workspace_id is 'The lead''s workspace.';
comment on column public.queue_entries.contact_id is 'The lead that was queued (at most once).';
comment on column public.queue_entries.for_date is 'The workspace-local day the lead was queued for.';
comment on column public.queue_entries.sequence_id is 'The sequence the lead was enrolled in; null once that sequence is deleted.';
comment on column public.queue_entries.enrollment_id is 'The enrollment prepare_queue() created; null once it is deleted.';
comment on column public.queue_entries.first_send_at is 'When the first step was scheduled to go out.';
comment on column public.queue_entries.actor is 'Who ran prepare_queue(): a user id, or the role.';
comment on column public.queue_entries.queued_at is 'When prepare_queue() ran.';

/** Section - views */
comment on column public.failed_messages.id is 'The failed or undelivered message; pass it to retry_message().';
comment on column public.failed_messages.workspace_id is 'The message''s workspace.';
comment on column public.failed_messages.contact_id is 'The recipient.';
comment on column public.failed_messages.phone is 'The recipient''s number (E.164).';
comment on column public.failed_messages.first_name is 'The recipient''s first name.';
comment on column public.failed_messages.last_name is 'The recipient''s last name.';
comment on column public.failed_messages.channel is 'sms or whatsapp.';
comment on column public.failed_messages.body is 'The text that was to be sent.';
comment on column public.failed_messages.status is 'failed or undelivered.';
comment on column public.failed_messages.attempts is 'Provider calls made.';
comment on column public.failed_messages.last_error_code is 'The provider''s error code (e.g. 21211 invalid number, 30003 unreachable).';
comment on column public.failed_messages.last_error is 'The provider''s (or Herald''s) error message.';
comment on column public.failed_messages.failed_at is 'When it failed.';
comment on column public.failed_messages.send_at is 'When it was due.';
comment on column public.failed_messages.created_at is 'When it was scheduled.';
comment on column public.failed_messages.retried is 'True once retry_message() has sent it again.';

comment on column public.queue_metrics.workspace_id is 'The workspace.';
comment on column public.queue_metrics.day is 'The workspace-local day: of sending, cancelling or failing, else of send_at.';
comment on column public.queue_metrics.scheduled is 'Messages still to go out that day (scheduled, queued or sending).';
comment on column public.queue_metrics.sent is 'Messages Twilio accepted that day.';
comment on column public.queue_metrics.delivered is 'Of those, delivered or read.';
comment on column public.queue_metrics.failed is 'Messages failed or undelivered that day.';
comment on column public.queue_metrics.cancelled is 'Messages cancelled that day.';
comment on column public.queue_metrics.cancelled_by_reason is 'Cancellations per cancel_reason, e.g. {"human_takeover": 1}.';
comment on column public.queue_metrics.deferred_by_reason is 'Deferrals per reason (quiet_hours, daily_limit, automation_paused, appointment_moved).';
comment on column public.queue_metrics.delivery_rate is 'delivered / sent, 0 to 1; null when nothing was sent.';
comment on column public.queue_metrics.median_delay_seconds is 'Median seconds from send_at to sent_at of the day''s sent messages.';
