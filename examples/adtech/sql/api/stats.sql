-- The recommender at a glance, day by day over the last 7 days computed: advertisers served, how
-- often the two models agree, and the advertisers whose lists changed most since the day before.
-- strata: path = "/v1/stats"
SELECT date, advertisers, model_agreement, avg_new_products, changed_most
FROM gold.recommendation_stats
ORDER BY date DESC
LIMIT 7
