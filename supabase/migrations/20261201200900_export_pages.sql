/**
 * export-queue reads in pages, each in a short transaction of its own (no transaction stays open
 * while a slow client reads). A page is the next rows of one workspace after a (send_at, id) key;
 * without an index in that order each page sorted every remaining row of the workspace, so an
 * export of 100,000 messages did a hundred sorts of up to 100,000 rows. With it, a page is an
 * index range scan.
 */
create index messages_workspace_send_at_idx on public.messages (workspace_id, send_at, id);
comment on index public.messages_workspace_send_at_idx is 'export-queue''s pages: the next rows of a workspace after a (send_at, id) key.';
