"""Research evaluation of the kiosk: whole screening sessions played to the real loop from
photos and training's run folders. Imports edge/ (the loop it judges), never the other way."""
