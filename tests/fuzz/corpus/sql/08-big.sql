SELECT a.value * b.value FROM range(1, 100000) a CROSS JOIN range(1, 100000) b ORDER BY 1 DESC
