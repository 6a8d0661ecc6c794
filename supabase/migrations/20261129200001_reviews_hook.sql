-- reviews_hook: supabase/functions_sql/ as of this migration, written by `autodoctor db commit`.
-- Whole files, re-runnable, in path order; then the drops of what they no longer define.
-- Edit the files in supabase/functions_sql/, never this migration (see docs/migrations.md).
set check_function_bodies = off;

-- >>> functions_sql reviews/prompts.sql sha256=63bbeecb278f354c40a3c89b24118e1d314c901efd50cb963153b41f7ec38e38
-- Reviews: what happens when a session is delivered (called by private.complete_session).
create or replace function private.reviews_on_session_delivered(p_session_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  -- nothing yet: the review prompt is added with the reviews
  perform p_session_id;
end
$$;
revoke execute on function private.reviews_on_session_delivered(uuid) from public;
grant execute on function private.reviews_on_session_delivered(uuid) to service_role;
-- <<< functions_sql reviews/prompts.sql

reset check_function_bodies;

-- functions_sql-manifest: the state of supabase/functions_sql/ after this migration
-- functions_sql-manifest core/admin.sql sha256=3ffcd3451d9f9aa0ebd9a8065c10592403dd1886d07e32da52a70c4f31ce01d0
-- functions_sql-manifest core/broadcasts.sql sha256=c93578c48e0d8c0c565a87dcb05642e2db63a0c8f168c31dee9dff2d1c798cec
-- functions_sql-manifest core/directory.sql sha256=bc92ebaf83f9d3782a918145c2a44fd3995622dff057f908249c81dd7289c92f
-- functions_sql-manifest core/helpers.sql sha256=fa1872c37c33a27b6875c41ae6e7c365f5d0a366926f2c758b43d0f067205e2e
-- functions_sql-manifest core/lifecycle.sql sha256=085845aef043f282c520acbf6dd067d763d71d82b970c25e6286ab2db6ccd3d1
-- functions_sql-manifest core/rpc.sql sha256=6a9f56292ebdcfa9c67e6a3e885c18eb185ee551917a9bae617854e49ef35dbb
-- functions_sql-manifest core/sessions.sql sha256=793771d65d0dd71f2e2b9ecb89d90fd77d805cdde6093462533459b5d2484c16
-- functions_sql-manifest core/signup.sql sha256=c1eaadc2d934df2bed3300c53885004a45fe59fb472bdbece20a33b0f704bd17
-- functions_sql-manifest core/transitions.sql sha256=098fdf6854df746cfb9fab11e2976507138ad996dc669984166c96a30e18f979
-- functions_sql-manifest jobs/admin.sql sha256=a431c8c37cae7835a803b49b41130f31e66f3e6dc2910f9e6f350a8b69944b13
-- functions_sql-manifest jobs/emails.sql sha256=6a1bfe3d3111c3552cfbbbd34001e834684b8997e98a0d24984646ed13770216
-- functions_sql-manifest jobs/nudges.sql sha256=c0b8d99bdc129ca4cbc3b46334391a788fcad25bce5fb0c06b4b3a775ffad85a
-- functions_sql-manifest jobs/outbox.sql sha256=2b71c342ff6ea91cdda0c0de9cb671b3d678768aabd67044c635de6c5b65ba86
-- functions_sql-manifest jobs/runs.sql sha256=22697585fd787eecd46440d55f7e68b6096ccbffae106360d2eca48014e3fd98
-- functions_sql-manifest jobs/schedules.sql sha256=092f997db095e599bef8a1b5f156c41e6bd61e1180e33d07c0d3e4f291b2391f
-- functions_sql-manifest jobs/sweep_requests.sql sha256=b71a7b97d2dec4579abcbd95477cd30cdcb2e1eb45123abd343bd2aaf4b2d948
-- functions_sql-manifest matching/eligibility.sql sha256=eff05764dacec6d36fe29bd5115957a4f5b6f99fc84ba99dc8ffc3a8d3e8c7e4
-- functions_sql-manifest matching/keywords.sql sha256=152d4fe0de3480e326b93190271c153a66f37f4f4cbf3b64bcc90821769a37a6
-- functions_sql-manifest matching/listing.sql sha256=1c4eb1fc60a30bc8a6473d2f601769d85979620a89d344f9a4ffa9e93e5186ed
-- functions_sql-manifest matching/metrics.sql sha256=16e0bfa047e423ebe70c19b3ca3e25ca809a7c0649361b46516eccb088b98145
-- functions_sql-manifest matching/presence.sql sha256=421df5980727f44db43fb1f9d2d00e506c103f9cf5a1c41dc5bc75ed7ebdfac7
-- functions_sql-manifest matching/ranking.sql sha256=02e0875522aa2a246c45717eb04ed2a31d77c41ab1a206e6e729d28e42fcb873
-- functions_sql-manifest matching/routing.sql sha256=b3a2f3e4e7eeed9b1c5a4d10136809fb13dd99f0d72fa5018c2384fc8a52a7cf
-- functions_sql-manifest micro/caps.sql sha256=09d21b2135fa52edd7a9e0f23450755c2393a33a9ad0d19d54a0cc643a10a10a
-- functions_sql-manifest micro/clock.sql sha256=3ed971a87065095252709e7157e2617fbcae92b5878ad82d9f0e098532569bc1
-- functions_sql-manifest micro/dashboards.sql sha256=87de41f51896fe6618f4546f3232db8ebc05fe1321b1368be3738ed7ec7adfa9
-- functions_sql-manifest micro/settings.sql sha256=493874142af29110c71f935052e330a06823ec4d0a1eaa08b0c273666ea539fd
-- functions_sql-manifest payments/admin.sql sha256=1e117ff190427ab5d40ab22de5fc00ab39dc4e8c7ae9c0f8063d3463907e2f1a
-- functions_sql-manifest payments/checkout.sql sha256=b1bed8c6bff974894bb274b364622547b672c43a2ef9a2ca0b964862dcf7d04c
-- functions_sql-manifest payments/connect.sql sha256=a8b79815e5f06ce6f00f3f5f82767bb9579e5e9c5f750338fc5c905c866b306d
-- functions_sql-manifest payments/credit.sql sha256=46ca316d088673f86ba57da14e97a14d761a4570debc1f3ad5d74e2538deb54f
-- functions_sql-manifest payments/helpers.sql sha256=564335851c5012a83791aa07b04ab1e2be627799d5b7fb91e995d57776037964
-- functions_sql-manifest payments/integrity.sql sha256=53638ac80faedb77c2e9dfcb8a44542f7fea7660de2751adb6fd25577b9c90e0
-- functions_sql-manifest payments/refunds.sql sha256=4edb68f527fb1003c755f4ec54da1214e1e63810003107ad81db117692e51fb7
-- functions_sql-manifest payments/settlement.sql sha256=0735e958fe9a2a1d5c6876e38fe4deb0f07c6b6b79694bf34d016d43d92462d5
-- functions_sql-manifest payments/stripe_events.sql sha256=e9afa113c50d272f865dcc0fb91ab7698503b2241c4381c27b94dd8de600e7bd
-- functions_sql-manifest payments/stripe_worker.sql sha256=1782c4903cee22796340dbe8043d1ae0f3b1446280d7d4259f6bda91cc80fe6c
-- functions_sql-manifest reviews/prompts.sql sha256=63bbeecb278f354c40a3c89b24118e1d314c901efd50cb963153b41f7ec38e38
-- functions_sql-manifest rooms/access.sql sha256=a07718bc391f20859bd2562f9ed876e7465f94d1363c6673677a15292db0ce36
-- functions_sql-manifest rooms/extensions.sql sha256=77c1726910f36d5ac38ac3d30d499d9b9b90c8a67a1599562049464201d9328a
-- functions_sql-manifest rooms/livekit_events.sql sha256=b63917c708016a2c5b78a960c3e9bbce14be641ad2a8278f0f213df60c70fe78
-- functions_sql-manifest rooms/timers.sql sha256=5265ead1f8b4bfd63c4236d6fc0d07afe4bc0053d21060682f6d557b921261c8
-- functions_sql-manifest scheduling/availability_rpc.sql sha256=6ba1e8bdbaf284ff3c92a76157bc70f073d3a842761f80369e14aa6cebf35514
-- functions_sql-manifest scheduling/booking_rpc.sql sha256=e5ff81674f7b6982fc33b2124ebe6ca52d85fd1deb3c169b31ebdcbb7b887b1c
-- functions_sql-manifest scheduling/calendar.sql sha256=6100fcc60a2a22bf1e09c2b682833fb40ba154ad5e9064b7c0bcd8c53b3a8324
-- functions_sql-manifest scheduling/changes.sql sha256=ea0d2fbf56d319a0e7d6bcdd2595e1f6323bb0bb7804a35103f07c1f1c7bda5e
-- functions_sql-manifest scheduling/committed_time.sql sha256=ddd38c89b02e59607f7f40768eae0c22b177f351729f61bf8b9c6c5b3784f553
-- functions_sql-manifest scheduling/holds.sql sha256=b5c8d45faa65a01d118217605eaa7aeb6d386c0a8c1d9377135c2610cfe43b1f
-- functions_sql-manifest scheduling/jobs.sql sha256=0e6312d573231b426c54900221c5b0ecbf53894ff7a9f634acf5d59fec14b64a
-- functions_sql-manifest scheduling/open_time.sql sha256=1825042aaf3c81077d65b47f47ae38afe1173a8b9ea12e338de9fc6041f5513c
-- functions_sql-manifest scheduling/reminders.sql sha256=025401df24f13a2de6d28c5ef71abd2134b287a87e25f0a98b395e69bc743734
-- functions_sql-manifest scheduling/rules.sql sha256=77e8204836c14debf06ee1933b26252a7fee4d3089fe7720ddf73d0adbed1af3
