DROP TABLE newsletter_actions;
