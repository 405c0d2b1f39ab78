DROP TABLE newsletter_clicks;
