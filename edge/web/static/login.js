// The login page: the error the server names, in the chosen language.
"use strict";
const KEYS = { wrong: "staff.wrong_password", too_many: "staff.too_many", busy: "staff.busy", csrf: "error.login" };
const error = document.getElementById("error");
if (error && KEYS[error.dataset.error]) error.dataset.i18n = KEYS[error.dataset.error];
I18N.start(true);
