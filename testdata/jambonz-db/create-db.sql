-- The test database and its user, created as root before schema.sql is loaded.
-- Plain MariaDB syntax (MariaDB refuses MySQL 8's "IDENTIFIED WITH <plugin> BY").
CREATE DATABASE IF NOT EXISTS jambones_test;
CREATE USER IF NOT EXISTS 'jambones_test'@'%' IDENTIFIED BY 'jambones_test';
CREATE USER IF NOT EXISTS 'jambones_test'@'localhost' IDENTIFIED BY 'jambones_test';
GRANT ALL ON jambones_test.* TO 'jambones_test'@'%';
GRANT ALL ON jambones_test.* TO 'jambones_test'@'localhost';
