-- Rate classes of the write RPCs added with delivery evidence and the waiver.
insert into private.rpc_rate_classes (function_name, class) values
  ('admin_release_payouts', 'admin')
on conflict (function_name) do update set class = excluded.class;
