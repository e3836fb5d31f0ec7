SELECT r.run_id, r.status, count(s.step) AS steps, max(s.rows_written) FROM system.runs r
LEFT JOIN system.step_runs s ON s.run_id = r.run_id GROUP BY r.run_id, r.status HAVING count(*) > 0
